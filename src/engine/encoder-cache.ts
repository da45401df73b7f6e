// The projector's output by image content, as vLLM's encoder cache: a media chunk's embedding
// rows are computed once and kept, within a budget of rows, for the other sequences that need
// the same image soon: a burst of requests sharing one image (each starts its own sequence; with
// the prefix cache on, those that wait for the first one's blocks still recompute the image rows
// of its last, partial block), a preempted sequence recomputing its prompt, a follow-up turn.
// Least recently used images go first; an encode in flight is shared, not started twice.
import type { NativeMediaChunk } from "../native/index.js";

/** Computes a media chunk's embedding rows (the model's projector). */
export type MediaEncoder = (chunk: NativeMediaChunk) => Promise<Float32Array>;

interface Entry {
  rows: Promise<Float32Array>;
  /** Embedding rows held (counted once the encode finished). */
  count: number;
}

export class EncoderCache {
  /** By chunk id (the image's content hash), least recently used first. */
  private readonly entries = new Map<string, Entry>();
  private heldRows = 0;
  private encodes = 0;

  constructor(
    private readonly encode: MediaEncoder,
    /** Most rows kept; the newest image stays even when it alone is more. */
    private readonly maxRows: number,
  ) {}

  /** Encodes run (the other calls were served from the cache). */
  get encodeCount(): number {
    return this.encodes;
  }

  /** The chunk's embedding rows, encoded unless the same content is cached or being encoded. */
  rows(chunk: NativeMediaChunk): Promise<Float32Array> {
    const cached = this.entries.get(chunk.id);
    if (cached) {
      this.entries.delete(chunk.id);
      this.entries.set(chunk.id, cached);
      return cached.rows;
    }
    this.encodes++;
    const rows = this.encode(chunk);
    // A chunk without an id (none is expected from mtmd's helpers) cannot be told apart: not kept.
    if (chunk.id === "") return rows;
    const entry: Entry = { rows, count: 0 };
    this.entries.set(chunk.id, entry);
    rows.then(
      () => {
        if (this.entries.get(chunk.id) !== entry) return;
        entry.count = chunk.nTokens;
        this.heldRows += entry.count;
        this.evict(chunk.id);
      },
      () => this.drop(chunk.id, entry),
    );
    return rows;
  }

  /** Drops the least recently used encoded images until the rows fit, but never `newest`. */
  private evict(newest: string): void {
    for (const [id, entry] of this.entries) {
      if (this.heldRows <= this.maxRows) return;
      if (id !== newest && entry.count > 0) this.drop(id, entry);
    }
  }

  private drop(id: string, entry: Entry): void {
    if (this.entries.get(id) !== entry) return;
    this.entries.delete(id);
    this.heldRows -= entry.count;
  }
}
