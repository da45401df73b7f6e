// Where the Engine's time goes: the step timings each model's metrics keep (EngineMetrics.steps,
// recorded around the Executor's run(), the only caller of the native step) split a burst's wall
// time into native decode, native sampling, the rest of the step call (batch arrays, the thread
// hand-off, result copies), and JS time between steps.
import type { Engine } from "../../src/engine/engine.js";
import type { StepTotals } from "../../src/engine/metrics.js";

export interface StepProfile {
  steps: number;
  /** Tokens in all steps / steps. */
  tokensPerStep: number;
  decodeMs: number;
  sampleMs: number;
  /** Inside ctx.step() but not decoding or sampling. */
  nativeOtherMs: number;
  /** Between one step's end and the next step's start, while steps ran back to back (gaps over 50 ms are idle). */
  betweenStepsMs: number;
}

const FIELDS = ["steps", "tokens", "rows", "decodeNs", "sampleNs", "stepMs", "betweenStepsMs"] as const;

export class StepProfiler {
  private start: StepTotals;

  constructor(private readonly engine: Engine) {
    this.start = this.totals();
  }

  /** Measures from now on. */
  reset(): void {
    this.start = this.totals();
  }

  summary(): StepProfile {
    const now = this.totals();
    const d = Object.fromEntries(FIELDS.map((f) => [f, now[f] - this.start[f]])) as unknown as StepTotals;
    const decodeMs = d.decodeNs / 1e6;
    const sampleMs = d.sampleNs / 1e6;
    return {
      steps: d.steps,
      tokensPerStep: d.steps ? d.tokens / d.steps : 0,
      decodeMs,
      sampleMs,
      nativeOtherMs: d.stepMs - decodeMs - sampleMs,
      betweenStepsMs: d.betweenStepsMs,
    };
  }

  // Summed over the loaded models (a bench session loads one).
  private totals(): StepTotals {
    const sum = Object.fromEntries(FIELDS.map((f) => [f, 0])) as unknown as StepTotals;
    for (const { steps } of this.engine.stats()) for (const f of FIELDS) sum[f] += steps[f];
    return sum;
  }
}
