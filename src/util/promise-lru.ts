// Promised values by key, least recently used first, within a budget of sizes (each value's size
// is counted once it resolves): the projector's encoder cache and the prepared media cache
// (src/engine/encoder-cache.ts, prepared-media.ts). A promise in flight is shared, not started
// twice; one that rejects is dropped.

interface Entry<T> {
  value: Promise<T>;
  /** Counted once resolved. */
  size: number;
}

export class PromiseLru<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private heldSize = 0;

  constructor(
    /** Most size kept; the newest value stays even when it alone is more. */
    private readonly maxSize: number,
  ) {}

  /** The value under `key`, now the most recently used, if kept or in flight. */
  get(key: string): Promise<T> | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Keeps `value` under `key` (the most recently used); once it resolves to a value of `sizeOf`, older values go until the sizes fit. */
  set(key: string, value: Promise<T>, sizeOf: (resolved: T) => number): void {
    const entry: Entry<T> = { value, size: 0 };
    this.entries.set(key, entry);
    value.then(
      (resolved) => {
        if (this.entries.get(key) !== entry) return;
        entry.size = sizeOf(resolved);
        this.heldSize += entry.size;
        this.evict(key);
      },
      () => this.drop(key, entry),
    );
  }

  /** Drops the least recently used resolved values until the sizes fit, but never `newest`. */
  private evict(newest: string): void {
    for (const [key, entry] of this.entries) {
      if (this.heldSize <= this.maxSize) return;
      if (key !== newest && entry.size > 0) this.drop(key, entry);
    }
  }

  private drop(key: string, entry: Entry<T>): void {
    if (this.entries.get(key) !== entry) return;
    this.entries.delete(key);
    this.heldSize -= entry.size;
  }
}
