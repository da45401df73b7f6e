// A native context without the addon, for the executor and the step loop: it logs every call in
// order, keeps each sequence id's sampler window and cache positions, and samples a token that
// depends on the whole window (so a sampler that missed its prompt or its replayed tokens
// samples differently). A sampler with a grammar defers every pick, as the native one does when
// the grammar refuses the sampler's choice: its step row is -1 and pickDeferred picks it. Tests
// script what the next steps and picks do.
import type { StepContext } from "../../src/engine/executor.js";
import type { EmbeddingRows, PickResult, SamplerParams, StepPlanArrays, StepResult } from "../../src/native/index.js";

export const SAMPLER: SamplerParams = {
  temperature: 0, topK: 40, topP: 1, minP: 0, typicalP: 1, seed: 0,
  repeatLastN: 64, repeatPenalty: 1, presencePenalty: 0, frequencyPenalty: 0,
};

/** What a scripted step does instead of decoding. */
export type StepFault = "no_room" | Error;

/** An Error as the addon throws it: a message and a code. */
export function nativeError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Calls held in flight until a test resumes them, by call number (from 1). */
class Holds {
  private readonly held = new Map<number, { started: () => void; gate: Promise<void> }>();

  /** Holds call `n` until `resume()`; `started` resolves once it is in flight. */
  hold(n: number): { started: Promise<void>; resume: () => void } {
    let started!: () => void;
    let resume!: () => void;
    const startedPromise = new Promise<void>((resolve) => (started = resolve));
    this.held.set(n, { started, gate: new Promise<void>((resolve) => (resume = resolve)) });
    return { started: startedPromise, resume };
  }

  async pass(n: number): Promise<void> {
    const held = this.held.get(n);
    if (!held) return;
    held.started();
    await held.gate;
  }
}

export class FakeContext implements StepContext {
  /** Every call, in order: "rm seq p0 p1", "cp src dst p0 p1", "clear seq", "set seq", "accept seq prompt|replay tokens", "step seq:start+count ...", "embd seq:start+rows ..." (one entry per run of a sequence's rows; ", 4 positions a row" with M-RoPE), "pick seq,...", "cancel-pick seq". */
  readonly calls: string[] = [];
  /** seqId -> tokens its sampler saw (prompt, replayed, sampled). */
  readonly samplers = new Map<number, number[]>();
  /** seqId -> positions in the cache. */
  readonly cells = new Map<number, Set<number>>();
  /** Step number (from 1) -> what that step does instead of decoding. */
  readonly faults = new Map<number, StepFault>();
  /** setSampler throws for these grammars, as llama.cpp refuses a grammar it cannot parse. */
  readonly badGrammars = new Set<string>();
  /** pickDeferred rejects with this (after any hold) when set. */
  failPicks?: Error;
  /** pickDeferred calls not yet settled (dispose is refused meanwhile, as natively). */
  picksInFlight = 0;
  private steps = 0;
  private picks = 0;
  private readonly stepHolds = new Holds();
  private readonly pickHolds = new Holds();
  /** Windows of samplers with a grammar; of those awaiting their pick; of those whose pick was cancelled. */
  private readonly grammars = new WeakSet<number[]>();
  private readonly awaiting = new WeakSet<number[]>();
  private readonly cancelled = new WeakSet<number[]>();

  constructor(
    readonly batchCapacity: number,
    readonly nUbatch = batchCapacity,
  ) {}

  /** Holds step `n` (from 1) in flight until `resume()`; `started` resolves once it is. */
  pause(n: number): { started: Promise<void>; resume: () => void } {
    return this.stepHolds.hold(n);
  }

  /** Holds pickDeferred call `n` (from 1) in flight until `resume()`. */
  pausePick(n: number): { started: Promise<void>; resume: () => void } {
    return this.pickHolds.hold(n);
  }

  setSampler(seqId: number, params: SamplerParams): void {
    this.calls.push(`set ${seqId}`);
    if (params.grammar !== undefined && this.badGrammars.has(params.grammar)) throw nativeError("failed to parse grammar", "ERR_GRAMMAR");
    const window: number[] = [];
    if (params.grammar !== undefined) this.grammars.add(window);
    this.samplers.set(seqId, window);
  }

  clearSampler(seqId: number): void {
    this.calls.push(`clear ${seqId}`);
    this.samplers.delete(seqId);
  }

  acceptTokens(seqId: number, tokens: Int32Array, grammar: boolean): void {
    this.calls.push(`accept ${seqId} ${grammar ? "replay" : "prompt"} ${tokens.join(",")}`);
    this.samplerOf(seqId).push(...tokens);
  }

  async pickDeferred(seqIds: Int32Array): Promise<PickResult> {
    this.calls.push(`pick ${seqIds.join(",")}`);
    const windows = Array.from(seqIds, (seqId) => {
      const window = this.samplerOf(seqId);
      if (!this.awaiting.has(window)) throw nativeError(`sequence ${seqId} has no deferred pick`, "ERR_INVALID_ARG");
      return window;
    });
    this.picksInFlight++;
    try {
      await this.pickHolds.pass(++this.picks);
      if (this.failPicks) throw this.failPicks;
      const tokens = windows.map((window) => {
        this.awaiting.delete(window);
        return this.cancelled.has(window) ? -1 : sampleFrom(window);
      });
      return { ...sampledArrays(tokens), sampleNs: 100 };
    } finally {
      this.picksInFlight--;
    }
  }

  /**
   * Natively, clearSampler and setSampler end the old sampler's pick too; here only cancelPick
   * does: a held pick whose sampler went stands for one that finished just before, whose token
   * comes back stale, which the loop must drop.
   */
  cancelPick(seqId: number): void {
    this.calls.push(`cancel-pick ${seqId}`);
    const window = this.samplers.get(seqId);
    if (window) this.cancelled.add(window);
  }

  seqRemove(seqId: number, p0: number, p1: number): boolean {
    this.calls.push(`rm ${seqId} ${p0} ${p1}`);
    const set = this.cells.get(seqId);
    if (set) for (const p of [...set]) if ((p0 < 0 || p >= p0) && (p1 < 0 || p < p1)) set.delete(p);
    return true;
  }

  seqCopy(src: number, dst: number, p0: number, p1: number): void {
    this.calls.push(`cp ${src} ${dst} ${p0} ${p1}`);
    const to = this.cells.get(dst) ?? new Set<number>();
    for (const p of this.cells.get(src) ?? []) if (p >= p0 && (p1 < 0 || p < p1)) to.add(p);
    this.cells.set(dst, to);
  }

  async step(plan: StepPlanArrays): Promise<StepResult> {
    const rows: string[] = [];
    for (let i = 0; i < plan.tokens.length; i++) {
      if (i === 0 || plan.seqIds[i] !== plan.seqIds[i - 1]) rows.push(`${plan.seqIds[i]}:${plan.positions[i]}`);
    }
    this.calls.push(`step ${rows.join(" ")}`);
    for (let i = 0; i < plan.tokens.length; i++) {
      if (plan.sample[i] && this.awaiting.has(this.samplerOf(plan.seqIds[i]))) throw nativeError(`sequence ${plan.seqIds[i]} awaits its grammar pick`, "ERR_INVALID_ARG");
    }
    await this.stepHolds.pass(++this.steps);
    const n = this.steps;
    const fault = this.faults.get(n);
    if (fault instanceof Error) throw fault;
    if (fault === "no_room") return result("no_room", []);
    const sampled: number[] = [];
    for (let i = 0; i < plan.tokens.length; i++) {
      const seqId = plan.seqIds[i];
      const cells = this.cells.get(seqId) ?? new Set<number>();
      cells.add(plan.positions[i]);
      this.cells.set(seqId, cells);
      if (!plan.sample[i]) continue;
      const window = this.samplerOf(seqId);
      if (this.grammars.has(window)) {
        this.awaiting.add(window);
        this.cancelled.delete(window);
        sampled.push(seqId, -1);
      } else sampled.push(seqId, sampleFrom(window));
    }
    return result("ok", sampled);
  }

  async decodeEmbeddings(rows: EmbeddingRows): Promise<{ status: "ok"; decodeNs: number }> {
    const runs: string[] = [];
    for (let i = 0; i < rows.seqIds.length; ) {
      const seqId = rows.seqIds[i];
      let n = 0;
      while (i + n < rows.seqIds.length && rows.seqIds[i + n] === seqId) n++;
      runs.push(`${seqId}:${rows.positions[i]}+${n}`);
      const cells = this.cells.get(seqId) ?? new Set<number>();
      for (const p of rows.positions.subarray(i, i + n)) cells.add(p);
      this.cells.set(seqId, cells);
      i += n;
    }
    const perRow = rows.positions.length / rows.seqIds.length;
    this.calls.push(`embd ${runs.join(" ")}${perRow === 1 ? "" : `, ${perRow} positions a row`}`);
    return { status: "ok", decodeNs: 1000 };
  }

  async dispose(): Promise<void> {
    this.calls.push("dispose");
    if (this.picksInFlight > 0) throw nativeError("context is busy with a grammar pick", "ERR_BUSY");
  }



  private samplerOf(seqId: number): number[] {
    const window = this.samplers.get(seqId);
    if (!window) throw nativeError(`sequence ${seqId} has no sampler`, "ERR_INVALID_ARG");
    return window;
  }
}

/** The token a sampler with this window samples (it depends on the whole window); it enters the window. */
function sampleFrom(window: number[]): number {
  const token = 100 + (window.reduce((a, t) => a + t, 0) % 97);
  window.push(token);
  return token;
}

function sampledArrays(tokens: number[]) {
  return {
    sampledTokens: Int32Array.from(tokens),
    sampledLogprobs: new Float32Array(tokens.length).fill(NaN),
    topN: 0,
    topIds: new Int32Array(0),
    topLogprobs: new Float32Array(0),
  };
}

function result(status: StepResult["status"], sampled: number[]): StepResult {
  const n = sampled.length / 2;
  return {
    status,
    sampledSeqIds: Int32Array.from({ length: n }, (_, r) => sampled[2 * r]),
    ...sampledArrays(Array.from({ length: n }, (_, r) => sampled[2 * r + 1])),
    decodeNs: 1000,
    sampleNs: 100,
  };
}
