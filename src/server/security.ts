// Browser-facing guards, as Ollama has them: CORS with an origin allow-list, and a Host-header
// check on loopback binds so a web page cannot reach the server through DNS rebinding.
import { BlockList, isIP } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import type { RequestHandler } from "express";
import { ForbiddenError } from "../api/errors.js";

const DEFAULT_ORIGINS = [
  ...["localhost", "127.0.0.1", "0.0.0.0"].flatMap((host) => [
    `http://${host}`,
    `https://${host}`,
    `http://${host}:*`,
    `https://${host}:*`,
  ]),
  "app://*",
  "file://*",
  "tauri://*",
  "vscode-webview://*",
];

const ALLOWED_HEADERS = ["authorization", "x-api-key", "content-type", "user-agent", "accept", "x-requested-with", "openai-beta"];
const ALLOWED_HEADER_PREFIXES = ["x-stainless-", "anthropic-"];
const ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS";
const PREFLIGHT_MAX_AGE_S = 12 * 60 * 60;

function wildcardPattern(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${escaped}$`, "i");
}

function isAllowedHeader(name: string): boolean {
  const lower = name.trim().toLowerCase();
  return ALLOWED_HEADERS.includes(lower) || ALLOWED_HEADER_PREFIXES.some((prefix) => lower.startsWith(prefix));
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    return false;
  }
}

/** Whether a request may come from `origin`: none (not a browser), the server's own page, or an allowed origin. */
export function originCheck(extraOrigins: readonly string[]): (origin: string | undefined, host: string | undefined) => boolean {
  const patterns = [...DEFAULT_ORIGINS, ...extraOrigins].map(wildcardPattern);
  return (origin, host) => origin === undefined || sameOrigin(origin, host) || patterns.some((p) => p.test(origin));
}

/** CORS: allowed origins get their origin echoed; preflights are answered here; others get 403. */
export function cors(extraOrigins: readonly string[]): RequestHandler {
  const allowed = originCheck(extraOrigins);
  return (req, res, next) => {
    const origin = req.headers.origin;
    if (origin === undefined || sameOrigin(origin, req.headers.host)) return next();
    if (!allowed(origin, req.headers.host)) return next(new ForbiddenError(`origin not allowed: ${origin}`));
    res.setHeader("Access-Control-Allow-Origin", origin);
    res.setHeader("Vary", "Origin");
    if (req.method !== "OPTIONS") return next();
    const requested = (req.headers["access-control-request-headers"] ?? "").split(",").filter((h) => h.trim() !== "");
    const refused = requested.find((h) => !isAllowedHeader(h));
    if (refused !== undefined) return next(new ForbiddenError(`header not allowed: ${refused.trim()}`));
    res.setHeader("Access-Control-Allow-Methods", ALLOWED_METHODS);
    if (requested.length > 0) res.setHeader("Access-Control-Allow-Headers", requested.map((h) => h.trim()).join(", "));
    res.setHeader("Access-Control-Max-Age", String(PREFLIGHT_MAX_AGE_S));
    res.status(204).end();
  };
}

const LOCAL_ADDRESSES = new BlockList();
LOCAL_ADDRESSES.addSubnet("127.0.0.0", 8, "ipv4");
LOCAL_ADDRESSES.addSubnet("10.0.0.0", 8, "ipv4");
LOCAL_ADDRESSES.addSubnet("172.16.0.0", 12, "ipv4");
LOCAL_ADDRESSES.addSubnet("192.168.0.0", 16, "ipv4");
LOCAL_ADDRESSES.addAddress("0.0.0.0", "ipv4");
LOCAL_ADDRESSES.addAddress("::1", "ipv6");
LOCAL_ADDRESSES.addAddress("::", "ipv6");
LOCAL_ADDRESSES.addSubnet("fc00::", 7, "ipv6");

function isLocalAddress(ip: string): boolean {
  const family = isIP(ip) === 6 ? "ipv6" : "ipv4";
  if (LOCAL_ADDRESSES.check(ip, family)) return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((iface) => iface.address === ip));
}

const LOCAL_SUFFIXES = [".localhost", ".local", ".internal"];

/** The host part of a Host header: "[::1]:11434" -> "::1", "Example.com:80" -> "example.com". */
function hostOf(header: string): string {
  if (isIP(header) !== 0) return header.toLowerCase();
  const bracketed = /^\[([^\]]+)\]/.exec(header);
  if (bracketed) return bracketed[1]!.toLowerCase();
  const colon = header.indexOf(":");
  return (colon === -1 ? header : header.slice(0, colon)).toLowerCase();
}

export function isAllowedHost(header: string | undefined): boolean {
  if (header === undefined || header === "") return true;
  const host = hostOf(header);
  if (isIP(host) !== 0) return isLocalAddress(host);
  return host === "localhost" || host === hostname().toLowerCase() || LOCAL_SUFFIXES.some((s) => host.endsWith(s));
}

export function isLoopbackBind(host: string): boolean {
  const h = hostOf(host);
  if (h === "localhost") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  return h === "::1";
}

/** Whether a Host header may reach a server bound to `bindHost`: any when bound beyond loopback (a LAN bind is meant to be reached). */
export function hostGuardAllows(bindHost: string): (hostHeader: string | undefined) => boolean {
  const guarded = isLoopbackBind(bindHost);
  return (hostHeader) => !guarded || isAllowedHost(hostHeader);
}

/** Refuses non-local Host headers, only when bound to loopback. */
export function hostGuard(bindHost: string): RequestHandler {
  const allows = hostGuardAllows(bindHost);
  return (req, _res, next) => {
    if (allows(req.headers.host)) return next();
    next(new ForbiddenError(`host not allowed: ${req.headers.host}`));
  };
}
