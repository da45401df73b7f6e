// Request bodies as JSON, whatever the Content-Type (clients, curl among them, often send JSON
// without one, and Ollama reads every body as JSON, as UTF-8 whatever its charset). A body of
// OFF_THREAD_BYTES or more is first decoded, parsed and given the checks that read only the body
// (prompt limits, schema bounds: src/server/request-checks.ts) on a worker thread, and parsed on
// the JS thread only once it passed: a refused one never costs the JS thread more than its bytes.
// WebSocket messages of that size take the same path (src/server/ws.ts).
// Measured 2026-12-02 on the shared 2-core machine, each held the JS thread before: a 358 KB
// `$ref` chain ~30 ms, a 2 MB 100,000-value enum ~50 ms, 16,000 messages (480 KB) ~15 ms, a 10 MB
// prompt ~100 ms with its garbage; sent back to back, they held every other request's tokens
// behind them (an unrelated 16-token request 2-3.7x its time at load 2, up to 100x at load 10-13).
import express, { type NextFunction, type Request, type RequestHandler } from "express";
import { fromWorkerError, ThreadPool, workerScript } from "../util/thread-pool.js";
import type { BodyJob, BodyReply } from "./json-body-worker.js";
import { parseJsonBody } from "./json-parse.js";
import type { ContentSettings } from "./request-checks.js";

/** Below this a body is parsed on the JS thread (a worker's round trip costs more than parsing it). */
export const OFF_THREAD_BYTES = 64 * 1024;

/** Worker threads for large bodies: bodies arrive one at a time per client, and more would take the model's cores. */
const BODY_THREADS = 2;

/**
 * The body and what moves it to the worker without a copy (it comes back with the verdict): its
 * own memory, as a large body's is (Buffer.concat of the chunks), else a copy of its bytes.
 */
function movable(bytes: Buffer): [Uint8Array, ArrayBuffer[]] {
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
  const body = own ? bytes : new Uint8Array(bytes);
  return [body, [body.buffer as ArrayBuffer]];
}

function parseInto(req: Request, bytes: Uint8Array, next: NextFunction): void {
  try {
    req.body = parseJsonBody(bytes);
  } catch (err) {
    return next(err);
  }
  next();
}

export interface JsonBodyParser {
  /** The middleware: the raw body within `limit` (inflated), then `req.body` parsed. */
  handlers: RequestHandler[];
  /**
   * A WebSocket message of OFF_THREAD_BYTES or more, read on a worker thread as a large body is
   * (its envelope, prompt limits, schema bounds): the verdict, with the message's id for its error.
   */
  checkMessage(bytes: Buffer): Promise<BodyReply>;
  /** Stops the worker threads. */
  close(): Promise<void>;
}

export function jsonBodyParser(limit: string, settings: ContentSettings): JsonBodyParser {
  const { maxMessages, promptLimit } = settings;
  const pool = new ThreadPool(workerScript(import.meta.url, "json-body-worker"), BODY_THREADS, { maxMessages, promptLimit });
  const offThread = (kind: BodyJob["kind"], bytes: Buffer): Promise<BodyReply> => {
    const [body, transfer] = movable(bytes);
    const job: BodyJob = { kind, bytes: body };
    return pool.run(job, transfer) as Promise<BodyReply>;
  };
  const readRaw = express.raw({ limit, type: () => true });
  const parse: RequestHandler = (req, _res, next) => {
    const bytes: unknown = req.body;
    if (!Buffer.isBuffer(bytes)) return next(); // no body
    if (bytes.length < OFF_THREAD_BYTES) return parseInto(req, bytes, next);
    offThread("body", bytes).then(({ error, bytes: returned }) => {
      if (error) return next(fromWorkerError(error));
      parseInto(req, returned, next);
    }, next);
  };
  return { handlers: [readRaw, parse], checkMessage: (bytes) => offThread("message", bytes), close: () => pool.close() };
}
