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

/**
 * The error class of one HTTP status. Each is still its own named class (`instanceof`, `name`);
 * `fallback` is the message when none is given.
 */
function statusError(status: number, code: string, fallback?: string) {
  return class extends VllamaError {
    constructor(message = fallback ?? code.replaceAll("_", " ")) {
      super(message, status, code);
    }
  };
}

export class BadRequestError extends statusError(400, "bad_request") {}
export class UnauthorizedError extends statusError(401, "unauthorized") {}
export class ForbiddenError extends statusError(403, "forbidden") {}
export class NotFoundError extends statusError(404, "not_found") {}
export class MethodNotAllowedError extends statusError(405, "method_not_allowed") {}
export class RequestTimeoutError extends statusError(408, "request_timeout") {}
export class PayloadTooLargeError extends statusError(413, "payload_too_large") {}
export class UpgradeRequiredError extends statusError(426, "upgrade_required") {}
export class TooManyRequestsError extends statusError(429, "too_many_requests") {}
export class CancelledError extends statusError(499, "cancelled", "request cancelled") {}
export class InternalError extends statusError(500, "internal") {}
export class NotImplementedError extends statusError(501, "not_implemented") {}
/** The server is draining after SIGTERM/SIGINT: try another replica (or this one once restarted). */
export class ShuttingDownError extends statusError(503, "shutting_down", "server is shutting down") {}

/** Ollama's exact wording: clients and load balancers match on it. */
export const BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded";

export class BusyError extends statusError(503, "busy", BUSY_MESSAGE) {}

/** The listen address is taken: startup fails with Ollama's wording, naming the address. */
export class AddressInUseError extends VllamaError {
  constructor(host: string, port: number) {
    super(`listen tcp ${host}:${port}: bind: address already in use`, 500, "address_in_use");
  }
}

/**
 * An RPC worker of `serve --rpc` is unreachable, silent or lost: the model cannot load or compute.
 * A model that lost a worker mid-generation is unloaded; the next request loads it again.
 */
export class RpcWorkerError extends statusError(503, "rpc_worker_unavailable") {}
