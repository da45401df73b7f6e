// NDJSON and SSE writers, and the tie between a response's lifetime and the engine call.
import type { Response } from "express";
import { CancelledError, InternalError } from "../api/errors.js";
import { notes, type StreamFormat } from "./context.js";
import { drained } from "./connection-limits.js";

const CONTENT_TYPES: Record<StreamFormat, string> = {
  ndjson: "application/x-ndjson",
  sse: "text/event-stream",
  "sse-events": "text/event-stream",
};

function encode(format: StreamFormat, item: unknown): string {
  const json = JSON.stringify(item);
  if (format === "ndjson") return `${json}\n`;
  if (format === "sse") return `data: ${json}\n\n`;
  return `event: ${(item as { type?: string }).type ?? "error"}\ndata: ${json}\n\n`;
}

/** Writes with backpressure; resolves false once the client is gone (or stopped reading for too long). */
function write(res: Response, text: string): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(text)) return Promise.resolve(true);
  return drained(res, notes(res).writeTimeout);
}

/**
 * Streams `items` as NDJSON lines or SSE events. The first item is awaited before any header
 * goes out, so an error raised before output (busy, unknown model, load failure) still gets
 * its real status; later errors propagate to the error middleware, which ends the stream.
 */
export async function writeStream(res: Response, format: StreamFormat, items: AsyncIterable<unknown>): Promise<void> {
  const iterator = items[Symbol.asyncIterator]();
  let finished = false;
  try {
    let next = await iterator.next();
    res.status(200).setHeader("Content-Type", CONTENT_TYPES[format]);
    if (format !== "ndjson") res.setHeader("Cache-Control", "no-cache");
    notes(res).streamFormat = format;
    res.flushHeaders();
    while (!next.done) {
      if (!(await write(res, encode(format, next.value)))) return;
      next = await iterator.next();
    }
    finished = true;
    if (format === "sse") await write(res, "data: [DONE]\n\n");
    res.end();
  } finally {
    // Leaving early (client gone, write error) lets the producer release what it holds.
    if (!finished) await iterator.return?.().catch(() => undefined);
  }
}

/** Ends a stream that already sent output with one final error item, status unchanged; OpenAI's SSE then says `[DONE]`, as its streams always end. */
export function endStreamWithError(res: Response, format: StreamFormat, body: object): void {
  if (res.writableEnded) return;
  res.end(format === "sse" ? encode(format, body) + "data: [DONE]\n\n" : encode(format, body));
}

/**
 * An AbortSignal that fires when the client disconnects before the response is complete, or when
 * the server ends the request at its shutdown deadline (src/server/lifecycle.ts).
 */
export function abortOnDisconnect(res: Response): AbortSignal {
  const controller = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) controller.abort(new CancelledError("client disconnected"));
  });
  const shutdown = notes(res).shutdown;
  return shutdown === undefined ? controller.signal : AbortSignal.any([controller.signal, shutdown]);
}

export function isAsyncIterable<T>(value: unknown): value is AsyncIterable<T> {
  return value !== null && typeof value === "object" && Symbol.asyncIterator in value;
}

/** The engine returns a stream iff `stream === true`; a mismatch is a bug, not bad input. */
export function expectStream<T>(result: T | AsyncIterable<T>): AsyncIterable<T> {
  if (!isAsyncIterable<T>(result)) throw new InternalError("engine returned a single response for a streaming request");
  return result;
}

export function expectSingle<T>(result: T | AsyncIterable<T>): T {
  if (isAsyncIterable<T>(result)) throw new InternalError("engine returned a stream for a non-streaming request");
  return result;
}

/** Consumes a progress stream for a `stream: false` request and returns its final status. */
export async function lastItem<T>(items: AsyncIterable<T>): Promise<T> {
  let last: T | undefined;
  for await (const item of items) last = item;
  if (last === undefined) throw new InternalError("engine returned an empty progress stream");
  return last;
}
