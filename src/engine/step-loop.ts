// The step loop of one model, running steps back to back while there is work:
//   plan = scheduler.schedule(); executor.prepare(plan);
//   for each batch of executor.batches(plan): outcome = await executor.run(batch), then the
//   scheduler takes the outcome (complete, or undo and preempt, or fail) and sampled tokens go
//   to their sequences.
// Nothing here calls the native context: what must change in it travels in the plan, and the
// executor applies it.
import { setImmediate as afterPendingCallbacks } from "node:timers/promises";
import { BadRequestError, CancelledError, RpcWorkerError, type VllamaError } from "../api/errors.js";
import { toTypedError } from "../native/index.js";
import type { AdmissionFailure, SampledRow, StepExecutor, StepOutcome } from "./executor.js";
import type { KvManager } from "./kv-manager.js";
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

  // Ends a sequence now; its cells and sampler are freed by the next plan.
  private cancel(seq: Sequence): void {
    if (seq.finished) return;
    seq.fail(new CancelledError());
    this.metrics.requestFinished("abort");
    this.wake();
  }

  /** Fails every sequence and waits for the step in flight. */
  async close(): Promise<void> {
    this.closed = true;
    this.failAll(new CancelledError("model was unloaded"));
    await this.stepping;
  }

  /** Starts the loop unless it runs already. */
  private wake(): void {
    if (this.looping) return;
    this.looping = true;
    this.stepping = this.runSteps();
  }

  private async runSteps(): Promise<void> {
    try {
      while (!this.closed) {
        this.dropFinished();
        if (!this.scheduler.hasWork) break;
        await this.step();
        if (this.yieldBetweenSteps) await afterPendingCallbacks();
      }
    } catch (error) {
      this.failAll(toTypedError(error));
    } finally {
      this.dropFinished();
      this.looping = false;
    }
  }

  private async step(): Promise<void> {
    const plan = this.scheduler.schedule();
    this.metrics.preempted(plan.preempted.length);
    const unschedulable = plan.entries.length === 0;
    // The plan's cache operations and releases apply even when nothing of it runs.
    for (const failure of this.executor.prepare(plan)) this.failAdmission(plan, failure);
    for (const a of plan.admissions) a.seq.noteAdmitted();
    if (unschedulable) this.failUnschedulable();
    if (plan.entries.length === 0) return;
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
        return;
      }
      this.scheduler.complete(batches[i]);
      for (const row of outcome.rows) this.deliver(row);
    }
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
    for (const seq of [...this.scheduler.running, ...this.scheduler.waiting]) seq.fail(error);
  }
}
