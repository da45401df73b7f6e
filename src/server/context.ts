// What every handler is given, and the per-request notes that the access log and the error
// middleware read back from `res.locals`.
import type { Response } from "express";
import type { Logger } from "pino";
import type { EngineService } from "../api/engine-contract.js";
import { defaultSetting, type ServerConfig } from "../config.js";

/** Settings an HTTP server needs; the optional ones default as in `vllama serve` (src/config.ts). */
export type ServerSettings = Pick<ServerConfig, "host" | "port" | "origins" | "bodyLimit"> &
  Partial<Pick<ServerConfig, OptionalServerSetting>>;

export type OptionalServerSetting =
  | "apiKeys" | "metricsAuth" | "headersTimeout" | "bodyTimeout" | "idleTimeout" | "writeTimeout" | "shutdownTimeout"
  | "maxMessages" | "promptLimit" | "allowPaths" | "remoteImages" | "remoteImageLimit" | "remoteImageTimeout";

export type FullSettings = Required<Pick<ServerSettings, OptionalServerSetting>> & ServerSettings;

export function withDefaults(config: ServerSettings): FullSettings {
  const keys: OptionalServerSetting[] = ["apiKeys", "metricsAuth", "headersTimeout", "bodyTimeout", "idleTimeout", "writeTimeout", "shutdownTimeout", "maxMessages", "promptLimit", "allowPaths", "remoteImages", "remoteImageLimit", "remoteImageTimeout"];
  const defaults = Object.fromEntries(keys.map((key) => [key, defaultSetting(key)]));
  return { ...defaults, ...config } as FullSettings;
}

export interface ServerDeps {
  engine: EngineService;
  config: ServerSettings;
  logger: Logger;
  /** Draining state, for the readiness probe (absent: never draining). */
  lifecycle?: { readonly draining: boolean };
}

/** "sse": `data:` lines ended by `data: [DONE]` (OpenAI chat); "sse-events": each item is an
 * `event:` named by its `type`, with no terminator (Anthropic's Messages, OpenAI's Responses). */
export type StreamFormat = "ndjson" | "sse" | "sse-events";

export interface RequestNotes {
  requestId?: string;
  model?: string;
  promptTokens?: number;
  evalTokens?: number;
  error?: string;
  /** The name of the API key the request came with (never the key). */
  keyName?: string;
  /** Aborted when the server ends the request at its shutdown deadline (reason: ShuttingDownError). */
  shutdown?: AbortSignal;
  /** How long a write may wait for a client that stopped reading (0 or Infinity: forever). */
  writeTimeout?: number;
  /** Set once a stream's headers are sent: a later error must end that stream in its format. */
  streamFormat?: StreamFormat;
}

export function notes(res: Response): RequestNotes {
  return res.locals as RequestNotes;
}

/** Records token counts from a response's final object for the access log. */
export function noteUsage(res: Response, usage: { prompt_eval_count?: number; eval_count?: number }): void {
  const n = notes(res);
  if (usage.prompt_eval_count !== undefined) n.promptTokens = usage.prompt_eval_count;
  if (usage.eval_count !== undefined) n.evalTokens = usage.eval_count;
}

/** Passes a generation stream through, noting the final chunk's token counts. */
export async function* notingUsage<T extends { done: boolean; prompt_eval_count?: number; eval_count?: number }>(
  res: Response,
  chunks: AsyncIterable<T>,
): AsyncGenerator<T> {
  for await (const chunk of chunks) {
    if (chunk.done) noteUsage(res, chunk);
    yield chunk;
  }
}
