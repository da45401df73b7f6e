// Request ids and one log line per request, written when the response closes (finished or not).
import { randomUUID } from "node:crypto";
import type { RequestHandler } from "express";
import type { Logger } from "pino";
import { notes } from "./context.js";

const CLIENT_REQUEST_ID = /^[\w.:-]{1,128}$/;

export function accessLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const incoming = req.headers["x-request-id"];
    const requestId = typeof incoming === "string" && CLIENT_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    const n = notes(res);
    n.requestId = requestId;
    res.setHeader("X-Request-Id", requestId);
    res.once("close", () => {
      logger.info(
        {
          id: requestId,
          method: req.method,
          route: req.route?.path ?? req.path,
          model: n.model,
          key: n.keyName,
          status: res.statusCode,
          latency_ms: Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10,
          prompt_tokens: n.promptTokens,
          eval_tokens: n.evalTokens,
          error: n.error,
          client_closed: res.writableFinished ? undefined : true,
        },
        "request",
      );
    });
    next();
  };
}
