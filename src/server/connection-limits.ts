// Limits on a connection beside Node's own (headers time, keep-alive idle): a body declared too
// large, a request body that stops arriving, and a response whose client stopped reading.
// Without them `Content-Length: 100` followed by 10 bytes held its socket forever, a declared
// length of 1e15 was read to the end before its 413, and a client that never read kept its
// sequence generating into a buffer.
import type { RequestHandler, Response } from "express";
import { PayloadTooLargeError, RequestTimeoutError } from "../api/errors.js";
import { closeAfterResponse, sendError } from "./errors.js";

/** 0 and Infinity mean no limit, as in Node's server timeouts. */
export function isLimited(ms: number | undefined): ms is number {
  return ms !== undefined && ms > 0 && Number.isFinite(ms);
}

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** Bytes of a body limit in Express's notation ("100mb", "512kb", "1048576"; src/config.ts checks the form). */
export function bodyLimitBytes(limit: string): number {
  const [, amount, unit] = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/.exec(limit.trim().toLowerCase()) ?? [];
  return Math.floor(Number(amount) * SIZE_UNITS[unit ?? "b"]!);
}

/** A JSON body whose declared length is over the limit gets 413 from its headers alone; the connection closes unread. */
export function declaredLengthLimit(limit: string): RequestHandler {
  const maxBytes = bodyLimitBytes(limit);
  return (req, _res, next) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared <= maxBytes) return next();
    next(new PayloadTooLargeError(`request body too large (${declared} bytes declared, limit ${maxBytes} bytes)`));
  };
}

/** A request body may go `ms` without a byte arriving; then 408 and the connection closes. */
export function bodyTimeout(ms: number): RequestHandler {
  return (req, res, next) => {
    if (!isLimited(ms) || req.readableEnded || req.headers["content-length"] === "0") return next();
    // Through the request, not the socket: Node destroys a socket whose own timeout nobody handles.
    req.setTimeout(ms, () => {
      closeAfterResponse(res);
      sendError(req, res, new RequestTimeoutError(`request body timed out: no data for ${ms / 1000}s`));
    });
    const done = () => req.socket.setTimeout(0);
    req.once("end", done);
    res.once("close", done);
    next();
  };
}

/**
 * Resolves once `res` takes more output (true) or is gone (false). A client that has not read
 * for `ms` is cut off (the response is destroyed, so its engine call is cancelled and its KV
 * cells freed) instead of keeping a sequence running for nobody.
 */
export function drained(res: Response, ms: number | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = isLimited(ms) ? setTimeout(() => res.destroy(), ms) : undefined;
    const settle = () => {
      clearTimeout(timer);
      res.off("drain", settle);
      res.off("close", settle);
      resolve(!res.destroyed);
    };
    res.on("drain", settle);
    res.on("close", settle);
  });
}
