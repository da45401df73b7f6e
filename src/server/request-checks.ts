// What a request body must pass before any engine work, over HTTP and WebSocket alike: the
// operator's prompt limits (src/server/prompt-limits.ts) and the path-model policy
// (src/server/path-models.ts).
import type { RequestHandler } from "express";
import type { ServerConfig } from "../config.js";
import { pathModelCheck } from "./path-models.js";
import { promptLimitCheck } from "./prompt-limits.js";

export type RequestCheck = (body: unknown) => Promise<void>;

export function requestCheck(settings: Pick<ServerConfig, "host" | "maxMessages" | "promptLimit" | "allowPaths">): RequestCheck {
  const checkPrompt = promptLimitCheck(settings.maxMessages, settings.promptLimit);
  const checkPaths = pathModelCheck(settings.allowPaths, settings.host);
  return async (body) => {
    checkPrompt(body);
    await checkPaths(body);
  };
}

export function requestCheckMiddleware(check: RequestCheck): RequestHandler {
  return (req, _res, next) => {
    check(req.body).then(() => next(), next);
  };
}
