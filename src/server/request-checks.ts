// What a request body must pass before any engine work, over HTTP and WebSocket alike: the
// operator's prompt limits (src/server/prompt-limits.ts), the bounds of its JSON schemas
// (src/server/schema-bounds.ts) and the path-model policy (src/server/path-models.ts). The first
// two read only the body, so a large body runs them on a worker thread (src/server/json-body.ts).
import type { RequestHandler } from "express";
import type { ServerConfig } from "../config.js";
import { pathModelCheck } from "./path-models.js";
import { promptLimitCheck } from "./prompt-limits.js";
import { checkSchemaBounds } from "./schema-bounds.js";

export type RequestCheck = (body: unknown) => Promise<void>;

export type ContentSettings = Pick<ServerConfig, "maxMessages" | "promptLimit">;

/** The checks that read only the body: prompt limits, then schema bounds. */
export function contentCheck(settings: ContentSettings): (body: unknown) => void {
  const checkPrompt = promptLimitCheck(settings.maxMessages, settings.promptLimit);
  return (body) => {
    checkPrompt(body);
    if (body !== null && typeof body === "object" && !Array.isArray(body)) checkSchemaBounds(body as Record<string, unknown>);
  };
}

export function requestCheck(settings: ContentSettings & Pick<ServerConfig, "host" | "allowPaths">): RequestCheck {
  const checkContent = contentCheck(settings);
  const checkPaths = pathModelCheck(settings.allowPaths, settings.host);
  return async (body) => {
    checkContent(body);
    await checkPaths(body);
  };
}

export function requestCheckMiddleware(check: RequestCheck): RequestHandler {
  return (req, _res, next) => {
    check(req.body).then(() => next(), next);
  };
}
