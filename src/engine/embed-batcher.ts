// Embeddings of many inputs (of one request or of many concurrent requests) are packed into
// shared native calls, as many sequences per call as the batch holds. The batcher decides which
// inputs go together; the EmbedExecutor makes the call.
import { BadRequestError, CancelledError } from "../api/errors.js";
import type { FlashAttention, NativeModel } from "../native/index.js";
import { EMBED_BATCH, EMBED_SEQS, EmbedExecutor } from "./embed-executor.js";

interface PendingInput {
  tokens: number[];
  resolve: (embedding: Float32Array) => void;
  reject: (error: unknown) => void;
  signal?: AbortSignal;
}

export class EmbedBatcher {
  private readonly executor: EmbedExecutor;
  private readonly pending: PendingInput[] = [];
  private draining = false;
  /** The drain now running (settled when nothing is pending). */
  private drained: Promise<void> = Promise.resolve();

  constructor(model: NativeModel, options: { flashAttention: FlashAttention }) {
    this.executor = new EmbedExecutor(model, options);
  }

  /** Largest input in tokens (one input is pooled within one batch). */
  get maxTokens(): number {
    return EMBED_BATCH;
  }

  embed(inputs: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    for (const tokens of inputs) {
      if (tokens.length === 0) throw new BadRequestError("cannot embed an empty input");
      if (tokens.length > EMBED_BATCH) throw new BadRequestError(`input of ${tokens.length} tokens exceeds the embedding batch of ${EMBED_BATCH}`);
    }
    const results = inputs.map(
      (tokens) => new Promise<Float32Array>((resolve, reject) => this.pending.push({ tokens, resolve, reject, signal })),
    );
    this.drain();
    return Promise.all(results);
  }

  async close(): Promise<void> {
    for (const p of this.pending.splice(0)) p.reject(new CancelledError("model was unloaded"));
    await this.drained;
    await this.executor.close();
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.drained = this.runBatches();
  }

  private async runBatches(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.takeBatch();
        if (batch.length > 0) await this.run(batch);
      }
    } finally {
      this.draining = false;
    }
  }

  private takeBatch(): PendingInput[] {
    const batch: PendingInput[] = [];
    let tokens = 0;
    while (this.pending.length > 0 && batch.length < EMBED_SEQS && tokens + this.pending[0].tokens.length <= EMBED_BATCH) {
      const input = this.pending.shift()!;
      if (input.signal?.aborted) {
        input.reject(new CancelledError());
        continue;
      }
      tokens += input.tokens.length;
      batch.push(input);
    }
    return batch;
  }

  private async run(batch: PendingInput[]): Promise<void> {
    try {
      const embeddings = await this.executor.run(batch.map((input) => input.tokens));
      batch.forEach((input, i) => input.resolve(embeddings[i]));
    } catch (error) {
      for (const input of batch) input.reject(error);
    }
  }
}
