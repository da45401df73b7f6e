// The step loop of one model, running steps back to back while there is work:
//   plan = scheduler.schedule(); executor.prepare(plan);
//   for each batch of executor.batches(plan): outcome = await executor.run(batch), then the
//   scheduler takes the outcome (complete, or undo and preempt, or fail) and sampled tokens go
//   to their sequences.
// A sequence whose grammar refused the sampler's choice gets its token from a deferred pick
// instead, off the step (the search may check a whole vocabulary against the grammar: with
// Qwen2's 151,936 tokens and a 256-value enum about 120 ms, which every step of the model
// waited for): it is not planned until the pick returns, and the others step meanwhile.
// Nothing here calls the native context: what must change in it travels in the plan, and the
// executor applies it.
import { setImmediate as afterPendingCallbacks } from "node:timers/promises";
import { BadRequestError, CancelledError, RpcWorkerError, type VllamaError } from "../api/errors.js";
import { toTypedError } from "../native/index.js";
import type { AdmissionFailure, PickOutcome, SampledRow, StepExecutor, StepOutcome } from "./executor.js";
import type { KvLease, KvManager } from "./kv-manager.js";
import type { EngineMetrics } from "./metrics.js";
import type { Batch, Scheduler, StepPlan } from "./scheduler.js";
import type { Sequence, TokenLogprobs, Vocabulary } from "./sequence.js";

export interface StepLoopParts {
  scheduler: Scheduler<Sequence>;
  executor: StepExecutor<Sequence>;
  kv: KvManager;
  metrics: EngineMetrics;
  vocab: Pick<Vocabulary, "tokenBytes">;
  /**
   * On the CPU, consumers take a step's tokens (stream writes, their clients waking up) before
   * the next step starts: done while the compute threads run, that work takes their cores and
   * stalls them at every barrier. With the model on a GPU the cores are free while it computes,
   * so the next step starts first and the consumers' work overlaps it.
   */
  yieldBetweenSteps: boolean;
  /**
   * Called once when a step lost an RPC worker: the KV cache it held is gone with it, so every
   * sequence fails with that error and the loop takes no more work (the model must be reloaded).
   */
  onWorkerLost?: (error: RpcWorkerError) => void;
}

/**
 * A sequence whose pick was deferred, with the lease it had then: a preemption (a new lease)
 * makes that pick stale, and the sequence samples again when it runs again.
 */
interface Deferral {
  seq: Sequence;
  lease: KvLease;
}

export class StepLoop {
  private readonly scheduler: Scheduler<Sequence>;
  private readonly executor: StepExecutor<Sequence>;
  private readonly kv: KvManager;
  private readonly metrics: EngineMetrics;
  private readonly vocab: Pick<Vocabulary, "tokenBytes">;
  private readonly yieldBetweenSteps: boolean;
  private readonly onWorkerLost: (error: RpcWorkerError) => void;
  private looping = false;
  /** The loop now running (settled when it ran out of work). */
  private stepping: Promise<void> = Promise.resolve();
  private closed = false;
  /** Why the loop stopped taking work, when a worker was lost (else it was unloaded). */
  private lostWith?: RpcWorkerError;
  /** Deferred picks not asked for yet: asked together once the pick in flight returns. */
  private deferrals: Deferral[] = [];
  /**
   * The pick in flight. One at a time per model: it holds one libuv thread (the steps need
   * another) and one core, however many grammar-constrained sequences wait.
   */
  private picking?: { deferrals: Deferral[]; returned: Promise<void> };
  /** Ends the loop's wait for the pick in flight when nothing else could be planned. */
  private resumeLoop?: () => void;
  /** Wake-ups (new work, a cancel, a returned pick): the loop waits only if none came since it planned. */
  private wakeups = 0;

  constructor(parts: StepLoopParts) {
    this.scheduler = parts.scheduler;
    this.executor = parts.executor;
    this.kv = parts.kv;
    this.metrics = parts.metrics;
    this.vocab = parts.vocab;
    this.yieldBetweenSteps = parts.yieldBetweenSteps;
    this.onWorkerLost = parts.onWorkerLost ?? (() => {});
  }

  get numRunning(): number {
    return this.scheduler.running.length;
  }

  get numWaiting(): number {
    return this.scheduler.waiting.length;
  }

  get queueFull(): boolean {
    return this.scheduler.full;
  }

  /** Queues a sequence (BusyError when the queue is full) and runs the loop. */
  submit(seq: Sequence, signal?: AbortSignal): void {
    if (this.closed) throw this.lostWith ?? new CancelledError("model is unloading");
    if (seq.tokens.length >= this.kv.kvCells) {
      throw new BadRequestError(`prompt of ${seq.tokens.length} tokens does not fit in the KV cache (${this.kv.kvCells} cells)`);
    }
    this.scheduler.add(seq);
    if (signal) {
      const onAbort = () => this.cancel(seq);
      if (signal.aborted) onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      seq.events.onSettled(() => signal.removeEventListener("abort", onAbort));
    }
    this.wake();
  }

  // Ends a sequence now (its pick too, if one runs); its cells and sampler are freed by the next plan.
  private cancel(seq: Sequence): void {
    if (seq.finished) return;
    seq.fail(new CancelledError());
    this.metrics.requestFinished("abort");
    this.stopPick(seq);
    this.wake();
  }

  /** Fails every sequence and waits for the step and the pick in flight. */
  async close(): Promise<void> {
    this.closed = true;
    this.failAll(new CancelledError("model was unloaded"));
    this.wakeLoop();
    await this.stepping;
    while (this.picking) await this.picking.returned;
  }

  /** Starts the loop unless it runs already (a loop waiting for a pick plans again). */
  private wake(): void {
    if (this.looping) {
      this.wakeLoop();
      return;
    }
    this.looping = true;
    this.stepping = this.runSteps();
  }

  private async runSteps(): Promise<void> {
    try {
      while (!this.closed) {
        this.dropFinished();
        if (!this.scheduler.hasWork) break;
        const wakeups = this.wakeups;
        if (!(await this.step())) await this.pickReturnedOrWoken(wakeups);
        if (this.yieldBetweenSteps) await afterPendingCallbacks();
      }
    } catch (error) {
      this.failAll(toTypedError(error));
    } finally {
      this.dropFinished();
      this.looping = false;
    }
  }

  /** Runs one plan; false when nothing could be planned. */
  private async step(): Promise<boolean> {
    const plan = this.scheduler.schedule();
    this.metrics.preempted(plan.preempted.length);
    const unschedulable = plan.entries.length === 0;
    // The plan's cache operations and releases apply even when nothing of it runs.
    for (const failure of this.executor.prepare(plan)) this.failAdmission(plan, failure);
    for (const a of plan.admissions) a.seq.noteAdmitted();
    // While a pick is in flight, its sequences hold places and cells that come free after it.
    if (unschedulable && !this.picking) this.failUnschedulable();
    if (plan.entries.length === 0) return false;
    const batches = this.executor.batches(plan);
    for (let i = 0; i < batches.length; i++) {
      const startMs = performance.now();
      const outcome = await this.executor.run(batches[i]);
      this.recordStep(startMs, batches[i], outcome);
      if (outcome.status !== "ok") {
        for (let j = i; j < batches.length; j++) this.scheduler.undo(batches[j]);
        if (outcome.status === "no_room") this.preemptForNoRoom();
        else if (outcome.error instanceof RpcWorkerError) this.loseWorker(outcome.error);
        else this.failBatch(batches[i], outcome.error);
        return true;
      }
      this.scheduler.complete(batches[i]);
      for (const row of outcome.rows) this.deliver(row);
      for (const seq of outcome.deferred) this.deferrals.push({ seq, lease: seq.lease! });
      this.askPicks();
    }
    return true;
  }

  /**
   * Waits until the pick in flight returns or `wake` (new work, a cancel); at once if none is in
   * flight or one of those came since the loop planned (`wakeups` then).
   */
  private async pickReturnedOrWoken(wakeups: number): Promise<void> {
    if (!this.picking || this.wakeups !== wakeups) return;
    await new Promise<void>((resolve) => (this.resumeLoop = resolve));
    this.resumeLoop = undefined;
  }

  private wakeLoop(): void {
    this.wakeups++;
    this.resumeLoop?.();
  }

  /** Asks for the deferred picks still awaited, unless a pick is in flight (they go after it). */
  private askPicks(): void {
    if (this.picking) return;
    const deferrals = this.deferrals.filter(awaitsPick);
    this.deferrals = [];
    if (deferrals.length === 0) return;
    const returned = this.executor.pick(deferrals.map((d) => d.seq)).then((outcome) => this.picked(deferrals, outcome));
    this.picking = { deferrals, returned };
  }

  /**
   * Picked tokens go to their sequences as tokens of a step do. Between steps or during one:
   * these sequences are in no batch, so removing a finished one cannot touch a step's cells.
   */
  private picked(deferrals: Deferral[], outcome: PickOutcome<Sequence>): void {
    this.picking = undefined;
    if (outcome.status === "failed") {
      for (const d of deferrals) if (awaitsPick(d)) this.fail(d.seq, outcome.error);
    } else {
      for (const row of outcome.rows) if (deferrals.some((d) => d.seq === row.seq && awaitsPick(d))) this.deliver(row);
    }
    this.askPicks();
    this.wakeLoop();
  }

  /** A failed sequence's pick in flight ends at its next block of candidates. */
  private stopPick(seq: Sequence): void {
    if (this.picking?.deferrals.some((d) => d.seq === seq && d.lease === seq.lease)) this.executor.cancelPick(seq);
  }

  private recordStep(startMs: number, batch: Batch<Sequence>, outcome: StepOutcome<Sequence>): void {
    const ok = outcome.status === "ok";
    this.metrics.stepRan(startMs, performance.now(), batch.numTokens, ok ? outcome.rows.length : 0, ok ? outcome.decodeNs : 0, ok ? outcome.sampleNs : 0);
  }

  private deliver(row: SampledRow<Sequence>): void {
    const seq = row.seq;
    if (seq.finished) return;
    const done = seq.accept(row.token, Number.isNaN(row.logprob) ? undefined : this.logprobs(row));
    this.metrics.tokenGenerated(seq);
    if (done) {
      this.metrics.requestFinished(seq.finishReason ?? "stop");
      this.scheduler.remove(seq);
    }
  }

  private logprobs(row: SampledRow<Sequence>): TokenLogprobs {
    const piece = (id: number) => {
      const bytes = this.vocab.tokenBytes(id, false);
      return { token: Buffer.from(bytes).toString("utf8"), bytes: [...bytes] };
    };
    return {
      ...piece(row.token),
      logprob: row.logprob,
      top: row.top.map((t) => ({ ...piece(t.id), logprob: t.logprob })),
    };
  }

  // llama.cpp's own placement disagreed with the accounting: make room and run again.
  private preemptForNoRoom(): void {
    this.scheduler.preemptForNoRoom();
    this.metrics.preempted(1);
  }

  // The native step failed: its sequences fail with the typed error; the others run on.
  private failBatch(batch: Batch<Sequence>, error: VllamaError): void {
    for (const e of batch.entries) this.fail(e.seq, error);
  }

  private loseWorker(error: RpcWorkerError): void {
    this.closed = true;
    this.lostWith = error;
    this.failAll(error);
    this.onWorkerLost(error);
  }

  private failAdmission(plan: StepPlan<Sequence>, { seq, error }: AdmissionFailure<Sequence>): void {
    seq.fail(error);
    this.scheduler.withdraw(plan, seq);
  }

  // Cancelled or failed sequences leave at a step boundary, when no step is running.
  private dropFinished(): void {
    for (const list of [this.scheduler.running, this.scheduler.waiting]) {
      for (let i = list.length - 1; i >= 0; i--) if (list[i].finished) this.scheduler.remove(list[i]);
    }
  }

  // Nothing could be planned: the first waiting prompt needs more cells than the cache has.
  private failUnschedulable(): void {
    const seq = this.scheduler.waiting[0];
    if (!seq) return;
    this.fail(seq, new BadRequestError(`prompt of ${seq.tokens.length} tokens does not fit in the free KV cache (${this.kv.freeCells} of ${this.kv.kvCells} cells)`));
  }

  private fail(seq: Sequence, error: VllamaError): void {
    seq.fail(error);
    this.scheduler.remove(seq);
  }

  private failAll(error: VllamaError): void {
    for (const seq of [...this.scheduler.running, ...this.scheduler.waiting]) {
      seq.fail(error);
      this.stopPick(seq);
    }
  }
}

/** Still waiting for its pick: not finished, and not preempted since it was deferred. */
function awaitsPick(d: Deferral): boolean {
  return !d.seq.finished && d.seq.lease === d.lease;
}
