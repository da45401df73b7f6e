// The only code that calls the embeddings context: made on first use, one native `embed` call
// per batch of inputs (the EmbedBatcher decides which inputs go together).
import { InternalError } from "../api/errors.js";
import { createContext, toTypedError, type FlashAttention, type NativeContext, type NativeModel } from "../native/index.js";

/** Tokens of all inputs in one call, and inputs in one call: the context's batch and sequence ids. */
export const EMBED_BATCH = 2048;
export const EMBED_SEQS = 64;

export class EmbedExecutor {
  private ctx: Promise<NativeContext> | undefined;

  constructor(
    private readonly model: NativeModel,
    private readonly options: { flashAttention: FlashAttention },
  ) {}

  /** One pooled embedding per input (at most EMBED_SEQS inputs of EMBED_BATCH tokens in all). */
  async run(inputs: number[][]): Promise<Float32Array[]> {
    const n = inputs.reduce((sum, tokens) => sum + tokens.length, 0);
    const plan = { tokens: new Int32Array(n), positions: new Int32Array(n), seqIds: new Int32Array(n), sample: new Uint8Array(n).fill(1) };
    let k = 0;
    inputs.forEach((tokens, seqId) => {
      tokens.forEach((t, pos) => {
        plan.tokens[k] = t;
        plan.positions[k] = pos;
        plan.seqIds[k++] = seqId;
      });
    });
    try {
      const ctx = await this.context();
      ctx.clear();
      const result = await ctx.embed(plan);
      if (result.status !== "ok") throw new InternalError("embedding batch found no room in its context");
      return inputs.map((_, i) => result.embeddings.slice(i * result.nEmbd, (i + 1) * result.nEmbd));
    } catch (error) {
      throw toTypedError(error);
    }
  }

  async close(): Promise<void> {
    if (this.ctx) await (await this.ctx).dispose();
  }

  private context(): Promise<NativeContext> {
    this.ctx ??= createContext(this.model, {
      kvCells: EMBED_BATCH,
      nSeqMax: EMBED_SEQS,
      batchCapacity: EMBED_BATCH,
      nUbatch: EMBED_BATCH,
      embeddings: true,
      // Generative models have no pooling of their own: mean over the tokens.
      pooling: this.model.info.hasDecoder ? "mean" : "model",
      flashAttn: this.options.flashAttention,
    });
    return this.ctx;
  }
}
