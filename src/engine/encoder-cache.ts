// The projector's output by image content, as vLLM's encoder cache: a media chunk's embedding
// rows are computed once and kept, within a budget of rows, for the other sequences that need
// the same image soon: a burst of requests sharing one image (each starts its own sequence; with
// the prefix cache on, those that wait for the first one's blocks still recompute the image rows
// of its last, partial block), a preempted sequence recomputing its prompt, a follow-up turn.
// Least recently used images go first; an encode in flight is shared, not started twice.
//
// Across requests only with the prefix cache on: the switch says whether one request may be
// served what another computed (its TTFT then tells that another sent the same image, the
// timing side channel vLLM salts both caches against), and the encoder's output is such work
// as much as the KV cells are. With the switch off, a request's rows are shared by its own
// sequences only (its choices, which share their prompt's cells then too, and a preempted
// sequence recomputing), so 32 requests sharing one image encode it 32 times, as they compute
// its rows 32 times.
import type { NativeMediaChunk } from "../native/index.js";
import { PromiseLru } from "../util/promise-lru.js";

/** Computes a media chunk's embedding rows (the model's projector). */
export type MediaEncoder = (chunk: NativeMediaChunk) => Promise<Float32Array>;

/**
 * A media chunk's embedding rows for a request: `request` stands for it (the prompt group of its
 * choices, or its one sequence).
 */
export type MediaRows = (chunk: NativeMediaChunk, request: object) => Promise<Float32Array>;

export class EncoderCache {
  /** Rows by chunk id (the image's content hash, and a tile's place in it: media.ts withChunkIds), under its request's number unless shared; sized in rows. */
  private readonly entries: PromiseLru<Float32Array>;
  /** Requests' numbers, for keys of rows not shared across requests. */
  private readonly requests = new WeakMap<object, number>();
  private nextRequest = 0;
  private encodes = 0;

  constructor(
    private readonly encode: MediaEncoder,
    /** Most rows kept; the newest image stays even when it alone is more. */
    maxRows: number,
    /** Requests share rows (the prefix cache is on); else each request's own. */
    private readonly acrossRequests: boolean,
  ) {
    this.entries = new PromiseLru(maxRows);
  }

  /** Encodes run (the other calls were served from the cache). */
  get encodeCount(): number {
    return this.encodes;
  }

  /** The chunk's embedding rows, encoded unless the same content is cached or being encoded (for this request, unless shared). */
  rows(chunk: NativeMediaChunk, request: object): Promise<Float32Array> {
    const key = this.keyOf(chunk, request);
    const cached = this.entries.get(key);
    if (cached) return cached;
    this.encodes++;
    const rows = this.encode(chunk);
    // A chunk without an id (none is expected from mtmd's helpers) cannot be told apart: not kept.
    if (chunk.id !== "") this.entries.set(key, rows, () => chunk.nTokens);
    return rows;
  }

  private keyOf(chunk: NativeMediaChunk, request: object): string {
    if (this.acrossRequests) return chunk.id;
    let n = this.requests.get(request);
    if (n === undefined) {
      n = this.nextRequest++;
      this.requests.set(request, n);
    }
    return `${n}/${chunk.id}`;
  }
}
