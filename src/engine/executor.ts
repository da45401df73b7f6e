// The executor runs a StepPlan: the only caller of the native step. It turns the plan into the
// typed arrays of native batches and hands back what was sampled, per sequence. It decides
// nothing about which tokens run, only how the backend runs them best.
import type { NativeContext, StepResult } from "../native/index.js";
import type { Batch, StepPlan, ScheduledSequence } from "./scheduler.js";

// llama.cpp's CPU flash attention runs a batch of 64 rows or more in 64-row query tiles, and
// computes a tile densely over every cache cell any of its rows may see. Single-token rows of
// many sequences (decode) in one tile make it dense over nearly the whole cache: a 512-token
// step with 32 decode rows beside a prompt chunk took 1.68 s mixed, 1.52 s as two batches.
// Alone, under 64 rows, they take the per-row path that skips other sequences' cells. The
// extra batch costs one more pass over the weights, which pays from a few sequences on.
const ATTENTION_TILE_ROWS = 64;
const MIN_SEPARATE_DECODE_ROWS = 8;

export interface SampledRow {
  seq: ScheduledSequence;
  token: number;
  logprob: number;
  top: Array<{ id: number; logprob: number }>;
}

export type StepOutcome =
  | { status: "ok"; rows: SampledRow[]; decodeNs: number; sampleNs: number }
  | { status: "no_room" };

export class Executor {
  // Reused across steps: a step allocates nothing per token on the JS side.
  private readonly tokens: Int32Array;
  private readonly positions: Int32Array;
  private readonly seqIds: Int32Array;
  private readonly sample: Uint8Array;

  /**
   * `cpuAttention`: attention runs on the CPU backend (the tiling above is the CPU kernel's;
   * GPU kernels were not measured, so their batches stay whole).
   */
  constructor(
    private readonly ctx: NativeContext,
    private readonly cpuAttention: boolean,
  ) {
    this.tokens = new Int32Array(ctx.nBatch);
    this.positions = new Int32Array(ctx.nBatch);
    this.seqIds = new Int32Array(ctx.nBatch);
    this.sample = new Uint8Array(ctx.nBatch);
  }

  /** The plan as batches to run one after another: the whole plan, or its decode rows first. */
  batches(plan: StepPlan): Batch[] {
    if (!this.cpuAttention || plan.numTokens < ATTENTION_TILE_ROWS) return [plan];
    const single = plan.entries.filter((e) => e.count === 1);
    if (single.length < MIN_SEPARATE_DECODE_ROWS || single.length >= ATTENTION_TILE_ROWS) return [plan];
    const chunks = plan.entries.filter((e) => e.count > 1);
    if (chunks.length === 0) return [plan];
    return [batchOf(single), batchOf(chunks)];
  }

  async run(batch: Batch): Promise<StepOutcome> {
    let n = 0;
    for (const e of batch.entries) {
      const seqId = e.seq.lease!.seqId;
      for (let i = 0; i < e.count; i++, n++) {
        this.tokens[n] = e.seq.tokens[e.start + i];
        this.positions[n] = e.start + i;
        this.seqIds[n] = seqId;
        this.sample[n] = 0;
      }
      if (e.sample) this.sample[n - 1] = 1;
    }
    const result = await this.ctx.step({
      tokens: this.tokens.subarray(0, n),
      positions: this.positions.subarray(0, n),
      seqIds: this.seqIds.subarray(0, n),
      sample: this.sample.subarray(0, n),
    });
    if (result.status === "no_room") return { status: "no_room" };
    return { status: "ok", rows: sampledRows(batch, result), decodeNs: result.decodeNs, sampleNs: result.sampleNs };
  }
}

function batchOf(entries: Batch["entries"]): Batch {
  return { entries, numTokens: entries.reduce((sum, e) => sum + e.count, 0) };
}

// Sampled rows come back in batch order: one per entry that asked for a sample.
function sampledRows(batch: Batch, result: StepResult): SampledRow[] {
  const rows: SampledRow[] = [];
  let r = 0;
  for (const e of batch.entries) {
    if (!e.sample) continue;
    const top: SampledRow["top"] = [];
    for (let k = 0; k < result.topN; k++) {
      const id = result.topIds[r * result.topN + k];
      if (id >= 0) top.push({ id, logprob: result.topLogprobs[r * result.topN + k] });
    }
    rows.push({ seq: e.seq, token: result.sampledTokens[r], logprob: result.sampledLogprobs[r], top });
    r++;
  }
  return rows;
}
