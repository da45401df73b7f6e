// Error mapping, in one place: typed errors keep their status and message; body-parser errors
// become 400/413; anything else is a 500 that is logged with its stack. Each API gets its own
// error shape: Ollama's `{"error": "..."}`, OpenAI's and Anthropic's typed objects.
import type { ErrorRequestHandler, Request, RequestHandler, Response } from "express";
import type { Logger } from "pino";
import {
  BadRequestError,
  InternalError,
  NotFoundError,
  PayloadTooLargeError,
  ShuttingDownError,
  VllamaError,
} from "../api/errors.js";
import type { AnthropicErrorResponse, AnthropicErrorType } from "../api/anthropic.js";
import type { OpenAIErrorResponse } from "../api/openai.js";
import { notes } from "./context.js";
import { endStreamWithError } from "./streams.js";

/** Errors thrown by Express's body parsers (http-errors) carry a `type` and a `status`. */
interface BodyParserError extends Error {
  type?: string;
  status?: number;
  expose?: boolean;
  limit?: number;
}

/** zlib's failures (a `Content-Encoding: gzip` body that is not gzip) carry a Z_ code. */
function isZlibError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && /^Z_/.test((err as NodeJS.ErrnoException).code ?? "");
}

function isBodyParserError(err: unknown): err is BodyParserError {
  return err instanceof Error && typeof (err as BodyParserError).type === "string" && "status" in err;
}

export function toVllamaError(err: unknown): VllamaError {
  if (err instanceof VllamaError) return err;
  if (isBodyParserError(err)) {
    if (err.type === "entity.too.large") return new PayloadTooLargeError(`request body too large (limit ${err.limit} bytes)`);
    if (err.expose && err.status !== undefined && err.status < 500) {
      return new VllamaError(err.message, err.status, "bad_request");
    }
  }
  if (isZlibError(err)) return new BadRequestError(`invalid request body: its Content-Encoding does not match it (${err.message})`);
  return new InternalError(err instanceof Error ? err.message : String(err));
}

type Api = "ollama" | "openai" | "anthropic";

function apiOf(req: Request): Api {
  if (req.path === "/v1/messages" || req.path.startsWith("/v1/messages/")) return "anthropic";
  return req.path.startsWith("/v1/") ? "openai" : "ollama";
}

function openAIErrorType(status: number): OpenAIErrorResponse["error"]["type"] {
  if (status === 404) return "not_found_error";
  if (status >= 400 && status < 500) return "invalid_request_error";
  return "api_error";
}

function openAIErrorBody(error: VllamaError): OpenAIErrorResponse {
  return { error: { message: error.message, type: openAIErrorType(error.status), param: null, code: null } };
}

const ANTHROPIC_ERROR_TYPES: Record<number, AnthropicErrorType> = {
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  529: "overloaded_error",
};

/** Anthropic says "overloaded" with its own status, 529, which its clients (Claude Code) retry. */
function anthropicStatus(status: number): number {
  return status === 503 ? 529 : status;
}

function anthropicErrorBody(error: VllamaError): AnthropicErrorResponse {
  const status = anthropicStatus(error.status);
  const type = ANTHROPIC_ERROR_TYPES[status] ?? (status >= 400 && status < 500 ? "invalid_request_error" : "api_error");
  return { type: "error", error: { type, message: error.message } };
}

function errorBody(api: Api, error: VllamaError): object {
  if (api === "anthropic") return anthropicErrorBody(error);
  return api === "openai" ? openAIErrorBody(error) : { error: error.message };
}

export const unknownRoute: RequestHandler = (req, _res, next) => {
  next(new NotFoundError(`${req.method} ${req.path} not found`));
};

/**
 * Records an error for the access log, logs an unexpected one with its stack, and returns its
 * typed form; for the middleware, and for a stream that reports failure in its own events.
 */
export function noteError(res: Response, err: unknown, logger: Logger): VllamaError {
  const error = toVllamaError(err);
  const n = notes(res);
  n.error = error.message;
  if (error instanceof InternalError && !(err instanceof VllamaError)) {
    logger.error({ err, requestId: n.requestId }, "unhandled error");
  }
  return error;
}

/** Ends the connection once `res` is written: the rest of a request body is never read. */
export function closeAfterResponse(res: Response): void {
  res.setHeader("Connection", "close");
  res.once("finish", () => res.req.socket.destroy());
}

/** Seconds a 503 (queue full, shutting down) asks a client to wait before it retries. */
const RETRY_AFTER_S = 1;

/** Answers `error` in the route's API shape; a stream that already sent output ends with it. */
export function sendError(req: Request, res: Response, error: VllamaError): void {
  notes(res).error = error.message;
  if (res.destroyed) return; // the client left: nobody to tell
  const api = apiOf(req);
  const body = errorBody(api, error);
  if (res.headersSent) {
    // Ollama ends a failed stream with a bare error line; a stream the shutdown deadline ended
    // also says it is done, and why, as a final chunk does.
    const format = notes(res).streamFormat ?? "ndjson";
    const final = error instanceof ShuttingDownError && format === "ndjson" ? { done: true, done_reason: "shutdown" } : {};
    endStreamWithError(res, format, { ...body, ...final });
    return;
  }
  if (error.status === 503) res.setHeader("Retry-After", String(RETRY_AFTER_S));
  // The rest of a body too large (or too slow) is not read: the connection closes instead.
  if (error.status === 413 || error.status === 408) closeAfterResponse(res);
  res.status(api === "anthropic" ? anthropicStatus(error.status) : error.status).json(body);
}

export function errorMiddleware(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    // A request ended by the shutdown deadline surfaces from the engine as cancelled: say why.
    const shutdown = notes(res).shutdown;
    sendError(req, res, noteError(res, shutdown?.aborted ? shutdown.reason : err, logger));
  };
}
