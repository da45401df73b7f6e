// Embeddings of many inputs (of one request or of many concurrent requests) are packed into
// shared native calls, as many sequences per call as the batch holds.
import { BadRequestError, CancelledError } from "../api/errors.js";
import { createContext, type NativeContext, type NativeModel } from "../native/index.js";

interface PendingInput {
  tokens: number[];
  resolve: (embedding: Float32Array) => void;
  reject: (error: unknown) => void;
  signal?: AbortSignal;
}

const EMBED_BATCH = 2048;
const EMBED_SEQS = 64;

export class EmbedBatcher {
  private ctx: Promise<NativeContext> | undefined;
  private readonly pending: PendingInput[] = [];
  private draining = false;
  /** The drain now running (settled when nothing is pending). */
  private drained: Promise<void> = Promise.resolve();

  constructor(
    private readonly model: NativeModel,
    private readonly options: { flashAttention: "auto" | "on" | "off" },
  ) {}

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
    if (this.ctx) await (await this.ctx).dispose();
  }

  private context(): Promise<NativeContext> {
    this.ctx ??= createContext(this.model, {
      nCtx: EMBED_BATCH,
      nSeqMax: EMBED_SEQS,
      nBatch: EMBED_BATCH,
      nUbatch: EMBED_BATCH,
      embeddings: true,
      // Generative models have no pooling of their own: mean over the tokens.
      pooling: this.model.info.hasDecoder ? "mean" : "model",
      flashAttn: this.options.flashAttention,
    });
    return this.ctx;
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
    const n = batch.reduce((sum, b) => sum + b.tokens.length, 0);
    const plan = { tokens: new Int32Array(n), positions: new Int32Array(n), seqIds: new Int32Array(n), sample: new Uint8Array(n).fill(1) };
    let k = 0;
    batch.forEach((input, seqId) => {
      input.tokens.forEach((t, pos) => {
        plan.tokens[k] = t;
        plan.positions[k] = pos;
        plan.seqIds[k++] = seqId;
      });
    });
    try {
      const ctx = await this.context();
      ctx.clear();
      const result = await ctx.embed(plan);
      if (result.status !== "ok") throw new Error("embedding batch found no room in its context");
      batch.forEach((input, i) => input.resolve(result.embeddings.slice(i * result.nEmbd, (i + 1) * result.nEmbd)));
    } catch (error) {
      for (const input of batch) input.reject(error);
    }
  }
}
