// Optional API keys: with keys configured, every route but the probes (and /metrics unless told)
// needs `Authorization: Bearer <key>` or `x-api-key: <key>` (OpenAI's and Anthropic's headers).
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { RequestHandler } from "express";
import { UnauthorizedError } from "../api/errors.js";
import type { ApiKey } from "../config.js";
import { notes } from "./context.js";

/** Probes and the banner: a load balancer or an orchestrator must reach them without a key. */
const OPEN_PATHS = new Set(["/", "/health", "/ready"]);

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/**
 * Finds the key `presented` matches, in time independent of how much of any key it matches:
 * digests of equal length compared with timingSafeEqual, every key compared, no early exit.
 */
export function keyMatcher(keys: readonly ApiKey[]): (presented: string) => ApiKey | undefined {
  const digests = keys.map((k) => ({ key: k, digest: digest(k.key) }));
  return (presented) => {
    const candidate = digest(presented);
    let found: ApiKey | undefined;
    for (const { key, digest: d } of digests) {
      if (timingSafeEqual(d, candidate) && found === undefined) found = key;
    }
    return found;
  };
}

function presentedKey(authorization: string | undefined, apiKeyHeader: string | string[] | undefined): string | undefined {
  const bearer = authorization === undefined ? undefined : /^Bearer\s+(.+)$/i.exec(authorization.trim())?.[1];
  if (bearer !== undefined) return bearer;
  return typeof apiKeyHeader === "string" && apiKeyHeader !== "" ? apiKeyHeader : undefined;
}

/** Refuses requests without a configured key (401, in the route's API error shape); notes the key's name. */
/**
 * Checks a request's key (headers of an HTTP request or of a WebSocket upgrade): the key it
 * matches, or an UnauthorizedError saying what is missing.
 */
export function keyCheck(keys: readonly ApiKey[]): (headers: IncomingHttpHeaders) => ApiKey | UnauthorizedError {
  const match = keyMatcher(keys);
  return (headers) => {
    const presented = presentedKey(headers.authorization, headers["x-api-key"]);
    const key = presented === undefined ? undefined : match(presented);
    if (key !== undefined) return key;
    const reason = presented === undefined ? "missing API key" : "invalid API key";
    return new UnauthorizedError(`${reason}: send it as "Authorization: Bearer <key>" or "x-api-key: <key>"`);
  };
}

/** The page's own files hold no data: a browser loads them before it can be asked for a key. */
function isOpenPath(path: string): boolean {
  return OPEN_PATHS.has(path) || path === "/dashboard" || path.startsWith("/web/");
}

export function apiKeyAuth(keys: readonly ApiKey[], metricsAuth: boolean): RequestHandler {
  const check = keyCheck(keys);
  return (req, res, next) => {
    if (keys.length === 0 || isOpenPath(req.path) || (req.path === "/metrics" && !metricsAuth)) return next();
    const key = check(req.headers);
    if (key instanceof UnauthorizedError) {
      res.setHeader("WWW-Authenticate", 'Bearer realm="vllama"');
      return next(key);
    }
    notes(res).keyName = key.name;
    next();
  };
}
