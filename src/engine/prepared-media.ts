// Media files prepared once by content, as vLLM's multimodal processor cache: decoding an image
// and preprocessing it into its chunks' pixels took 8 ms for a 336 x 336 PNG and 30 ms for a
// 1024 x 1024 one (one core, 2026-12-02), and chat clients send every earlier turn's images again
// with each turn. 32 requests sharing one image decoded it 32 times, beside the encode and the
// steps that the burst waited for. A prompt is then tokenized with placeholders (media.ts).
//
// Across requests only with the prefix cache on, as the encoder cache (encoder-cache.ts): a
// request that finds its image prepared answers sooner, which tells that another sent it.
import { createHash } from "node:crypto";
import type { PreparedMedia } from "../native/index.js";
import { PromiseLru } from "../util/promise-lru.js";

/** Decodes and preprocesses one file; errors call it `name` ("image 2"). */
export type PrepareFile = (file: Uint8Array, name: string) => Promise<PreparedMedia>;

export class PreparedMediaCache {
  /** By the file's SHA-256; sized in its chunks' rows. */
  private readonly entries: PromiseLru<PreparedMedia>;

  constructor(
    private readonly prepareFile: PrepareFile,
    /** Most rows kept; the newest file stays even when it alone is more. */
    maxRows: number,
  ) {
    this.entries = new PromiseLru(maxRows);
  }

  /**
   * The file prepared, unless the same bytes are prepared or being prepared. A preparation that
   * fails is not kept: a call that waited for it prepares its file itself, so that its error names
   * its own file's place in its own prompt.
   */
  prepared(file: Uint8Array, name: string): Promise<PreparedMedia> {
    const key = createHash("sha256").update(file).digest("hex");
    const cached = this.entries.get(key);
    if (cached) return cached.catch(() => this.prepareFile(file, name));
    const media = this.prepareFile(file, name);
    this.entries.set(key, media, (prepared) => prepared.chunks.reduce((rows, c) => rows + c.nTokens, 0));
    return media;
  }
}
