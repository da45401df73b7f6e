/** An error carrying the user-facing message and the HTTP status it maps to. */
export class VllamaError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequestError extends VllamaError {
  constructor(message: string) {
    super(message, 400, "bad_request");
  }
}

export class UnauthorizedError extends VllamaError {
  constructor(message: string) {
    super(message, 401, "unauthorized");
  }
}

export class ForbiddenError extends VllamaError {
  constructor(message: string) {
    super(message, 403, "forbidden");
  }
}

export class NotFoundError extends VllamaError {
  constructor(message: string) {
    super(message, 404, "not_found");
  }
}

export class MethodNotAllowedError extends VllamaError {
  constructor(message: string) {
    super(message, 405, "method_not_allowed");
  }
}

export class TooManyRequestsError extends VllamaError {
  constructor(message: string) {
    super(message, 429, "too_many_requests");
  }
}

export class UpgradeRequiredError extends VllamaError {
  constructor(message: string) {
    super(message, 426, "upgrade_required");
  }
}

export class CancelledError extends VllamaError {
  constructor(message = "request cancelled") {
    super(message, 499, "cancelled");
  }
}

export class InternalError extends VllamaError {
  constructor(message: string) {
    super(message, 500, "internal");
  }
}

export class NotImplementedError extends VllamaError {
  constructor(message: string) {
    super(message, 501, "not_implemented");
  }
}

export class PayloadTooLargeError extends VllamaError {
  constructor(message: string) {
    super(message, 413, "payload_too_large");
  }
}

export class RequestTimeoutError extends VllamaError {
  constructor(message: string) {
    super(message, 408, "request_timeout");
  }
}

/** The server is draining after SIGTERM/SIGINT: try another replica (or this one once restarted). */
export class ShuttingDownError extends VllamaError {
  constructor(message = "server is shutting down") {
    super(message, 503, "shutting_down");
  }
}

/** Ollama's exact wording: clients and load balancers match on it. */
export const BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded";

export class BusyError extends VllamaError {
  constructor(message = BUSY_MESSAGE) {
    super(message, 503, "busy");
  }
}

/** The listen address is taken: startup fails with Ollama's wording, naming the address. */
export class AddressInUseError extends VllamaError {
  constructor(host: string, port: number) {
    super(`listen tcp ${host}:${port}: bind: address already in use`, 500, "address_in_use");
  }
}
