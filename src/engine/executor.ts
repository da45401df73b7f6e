// The executor runs a StepPlan: the only caller of the native step. It turns the plan into the
// typed arrays of one batch and hands back what was sampled, per sequence. It decides nothing.
import type { NativeContext, StepResult } from "../native/index.js";
import type { StepPlan, ScheduledSequence } from "./scheduler.js";

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

  constructor(private readonly ctx: NativeContext) {
    this.tokens = new Int32Array(ctx.nBatch);
    this.positions = new Int32Array(ctx.nBatch);
    this.seqIds = new Int32Array(ctx.nBatch);
    this.sample = new Uint8Array(ctx.nBatch);
  }

  async run(plan: StepPlan): Promise<StepOutcome> {
    let n = 0;
    for (const e of plan.entries) {
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
    return { status: "ok", rows: sampledRows(plan, result), decodeNs: result.decodeNs, sampleNs: result.sampleNs };
  }
}

// Sampled rows come back in plan order: one per entry that asked for a sample.
function sampledRows(plan: StepPlan, result: StepResult): SampledRow[] {
  const rows: SampledRow[] = [];
  let r = 0;
  for (const e of plan.entries) {
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
