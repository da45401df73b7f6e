// Where the Engine's time goes: wraps the Executor's run() (the only caller of the native step;
// its prototype is plain JS, while the addon's methods are read-only) and splits a burst's wall
// time into native decode, native sampling, the rest of the step call (batch arrays, the
// thread hand-off, result copies), and JS time between steps.
import { Executor, type StepOutcome } from "../../src/engine/executor.js";
import type { StepPlan } from "../../src/engine/scheduler.js";

export interface StepProfile {
  steps: number;
  /** Tokens in all steps / steps. */
  tokensPerStep: number;
  decodeMs: number;
  sampleMs: number;
  /** Inside ctx.step() but not decoding or sampling. */
  nativeOtherMs: number;
  /** Between one step's end and the next step's start, while steps ran back to back. */
  betweenStepsMs: number;
}

interface Sample {
  start: number;
  end: number;
  tokens: number;
  decodeNs: number;
  sampleNs: number;
}

export class StepProfiler {
  private samples: Sample[] = [];

  /** Installs the wrapper (once per process: every Executor is measured). */
  static install(): StepProfiler {
    const profiler = new StepProfiler();
    const run = Executor.prototype.run;
    Executor.prototype.run = async function (this: Executor, plan: StepPlan): Promise<StepOutcome> {
      const start = performance.now();
      const outcome = await run.call(this, plan);
      const ok = outcome.status === "ok";
      profiler.samples.push({
        start, end: performance.now(), tokens: plan.numTokens, decodeNs: ok ? outcome.decodeNs : 0, sampleNs: ok ? outcome.sampleNs : 0,
      });
      return outcome;
    };
    return profiler;
  }

  reset(): void {
    this.samples = [];
  }

  /** Gaps longer than `idleMs` are idle time (no work queued), not step overhead. */
  summary(idleMs = 50): StepProfile {
    const s = this.samples;
    let between = 0;
    for (let i = 1; i < s.length; i++) {
      const gap = s[i].start - s[i - 1].end;
      if (gap < idleMs) between += gap;
    }
    const sum = (f: (x: Sample) => number) => s.reduce((a, x) => a + f(x), 0);
    const decodeMs = sum((x) => x.decodeNs) / 1e6;
    const sampleMs = sum((x) => x.sampleNs) / 1e6;
    return {
      steps: s.length,
      tokensPerStep: s.length ? sum((x) => x.tokens) / s.length : 0,
      decodeMs,
      sampleMs,
      nativeOtherMs: sum((x) => x.end - x.start) - decodeMs - sampleMs,
      betweenStepsMs: between,
    };
  }
}
