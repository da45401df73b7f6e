// Error mapping, in one place: typed errors keep their status and message; body-parser errors
// become 400/413; anything else is a 500 that is logged with its stack.
import type { ErrorRequestHandler, Request, RequestHandler } from "express";
import type { Logger } from "pino";
import {
  BadRequestError,
  InternalError,
  NotFoundError,
  PayloadTooLargeError,
  VllamaError,
} from "../api/errors.js";
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

function isBodyParserError(err: unknown): err is BodyParserError {
  return err instanceof Error && typeof (err as BodyParserError).type === "string" && "status" in err;
}

export function toVllamaError(err: unknown): VllamaError {
  if (err instanceof VllamaError) return err;
  if (isBodyParserError(err)) {
    if (err.type === "entity.parse.failed") return new BadRequestError(`invalid JSON body: ${err.message}`);
    if (err.type === "entity.too.large") return new PayloadTooLargeError(`request body too large (limit ${err.limit} bytes)`);
    if (err.expose && err.status !== undefined && err.status < 500) {
      return new VllamaError(err.message, err.status, "bad_request");
    }
  }
  return new InternalError(err instanceof Error ? err.message : String(err));
}

function isOpenAIRoute(req: Request): boolean {
  return req.path.startsWith("/v1/");
}

function openAIErrorType(status: number): OpenAIErrorResponse["error"]["type"] {
  if (status === 404) return "not_found_error";
  if (status >= 400 && status < 500) return "invalid_request_error";
  return "api_error";
}

function openAIErrorBody(error: VllamaError): OpenAIErrorResponse {
  return { error: { message: error.message, type: openAIErrorType(error.status), param: null, code: null } };
}

function errorBody(req: Request, error: VllamaError): object {
  return isOpenAIRoute(req) ? openAIErrorBody(error) : { error: error.message };
}

export const unknownRoute: RequestHandler = (req, _res, next) => {
  next(new NotFoundError(`${req.method} ${req.path} not found`));
};

export function errorMiddleware(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const error = toVllamaError(err);
    const n = notes(res);
    n.error = error.message;
    if (error instanceof InternalError && !(err instanceof VllamaError)) {
      logger.error({ err, requestId: n.requestId }, "unhandled error");
    }
    if (res.destroyed) return; // the client left: nobody to tell
    const body = errorBody(req, error);
    if (res.headersSent) {
      endStreamWithError(res, n.streamFormat ?? "ndjson", body);
      return;
    }
    res.status(error.status).json(body);
  };
}
