// One loaded model: its native model and context, the KV manager, the scheduler, and the step
// loop that runs back to back while there is work:
//   plan = scheduler.schedule(); for each executor batch: executor.run(batch); scheduler.complete(batch)
import { setImmediate as afterPendingCallbacks } from "node:timers/promises";
import { BadRequestError, CancelledError } from "../api/errors.js";
import { createContext, initBackend, loadModel, type GpuChoice, type NativeContext, type NativeModel } from "../native/index.js";
import { EmbedBatcher } from "./embed-batcher.js";
import { Executor, type SampledRow } from "./executor.js";
import { idleBlockTokens, KvManager } from "./kv-manager.js";
import { Scheduler, type StepPlan } from "./scheduler.js";
import { EngineMetrics } from "./metrics.js";
import type { Sequence, TokenLogprobs } from "./sequence.js";

export interface RunnerOptions {
  /** Total KV cells of the unified cache (shared by all sequences). */
  kvCells: number;
  /** Most sequences generating at once. */
  parallel: number;
  /** Most requests waiting beyond `parallel`. */
  maxQueue: number;
  /** Prompt tokens per step (decode tokens of running sequences come on top); default by device. */
  batchSize?: number;
  flashAttention: "auto" | "on" | "off";
  kvCacheType: "f16" | "q8_0" | "q4_0";
  prefixCache: boolean;
  gpu: GpuChoice;
  threads: number;
  gpuLayers?: number;
  useMmap?: boolean;
}

// Sequence ids: running sequences plus sequences that hold cached prefixes (llama.cpp's maximum).
const MAX_SEQ_IDS = 256;
// llama.cpp's default physical batch for prompt chunks: larger chunks are computed in pieces.
const UBATCH_SIZE = 512;
// Default prompt tokens per step: Ollama's num_batch on the CPU, llama-server's n_batch on a GPU.
const CPU_BATCH_SIZE = 512;
const GPU_BATCH_SIZE = 2048;

function maxRunning(options: RunnerOptions): number {
  return Math.min(options.parallel, MAX_SEQ_IDS);
}

/** Where the model computes, and the step's prompt budget that follows from it. */
interface Device {
  onGpu: boolean;
  batchSize: number;
}

function deviceFor(options: RunnerOptions): Device {
  const onGpu = initBackend(options.gpu).backend !== "cpu" && options.gpuLayers !== 0;
  return { onGpu, batchSize: options.batchSize ?? (onGpu ? GPU_BATCH_SIZE : CPU_BATCH_SIZE) };
}

export class ModelRunner {
  readonly metrics = new EngineMetrics();
  private readonly kv: KvManager;
  private readonly scheduler: Scheduler;
  private readonly executor: Executor;
  private readonly embedder: EmbedBatcher;
  private looping = false;
  /** The step loop now running (settled when it ran out of work). */
  private stepping: Promise<void> = Promise.resolve();
  private closed = false;
  /**
   * On the CPU, consumers take a step's tokens (stream writes, their clients waking up) before
   * the next step starts: done while the compute threads run, that work takes their cores and
   * stalls them at every barrier. With the model on a GPU the cores are free while it computes,
   * so the next step starts first and the consumers' work overlaps it.
   */
  private readonly computesOnCpu: boolean;

  private constructor(
    readonly path: string,
    readonly model: NativeModel,
    private readonly ctx: NativeContext,
    readonly options: RunnerOptions,
    device: Device,
  ) {
    this.kv = new KvManager(ctx, ctx.nCtx, ctx.nSeqMax, options.prefixCache, idleBlockTokens(model.info));
    this.scheduler = new Scheduler(this.kv, {
      maxRunning: maxRunning(options),
      chunkBudget: device.batchSize,
      maxWaiting: options.maxQueue,
    });
    this.computesOnCpu = !device.onGpu;
    this.executor = new Executor(ctx, this.computesOnCpu);
    this.embedder = new EmbedBatcher(model, options);
  }

  static async load(path: string, options: RunnerOptions, onProgress?: (p: number) => void): Promise<ModelRunner> {
    const device = deviceFor(options);
    const model = await loadModel(path, { gpu: options.gpu, gpuLayers: options.gpuLayers, useMmap: options.useMmap, onProgress });
    try {
      const ctx = await createContext(model, {
        nCtx: options.kvCells,
        nSeqMax: MAX_SEQ_IDS,
        // Room for a full prompt chunk and every running sequence's decode token, computed in one
        // pass when the chunk fits UBATCH_SIZE (a pass over the weights per piece).
        nBatch: device.batchSize + maxRunning(options),
        nUbatch: Math.min(device.batchSize, UBATCH_SIZE) + maxRunning(options),
        flashAttn: options.flashAttention,
        typeK: options.kvCacheType,
        typeV: options.kvCacheType,
        threads: options.threads,
      });
      return new ModelRunner(path, model, ctx, options, device);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  get kvCells(): number {
    return this.ctx.nCtx;
  }

  get numRunning(): number {
    return this.scheduler.running.length;
  }

  get numWaiting(): number {
    return this.scheduler.waiting.length;
  }

  kvStats() {
    return this.kv.stats();
  }

  /** Queues a sequence (BusyError when the queue is full); the step loop picks it up. */
  submit(seq: Sequence, signal?: AbortSignal): void {
    if (this.closed) throw new CancelledError("model is unloading");
    if (seq.tokens.length >= this.ctx.nCtx) {
      throw new BadRequestError(`prompt of ${seq.tokens.length} tokens does not fit in the KV cache (${this.ctx.nCtx} cells)`);
    }
    this.scheduler.add(seq);
    if (signal) {
      const onAbort = () => this.cancel(seq);
      if (signal.aborted) onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      seq.events.onSettled(() => signal.removeEventListener("abort", onAbort));
    }
    this.loop();
  }

  /** Longest input `embed` takes, in tokens. */
  get embedMaxTokens(): number {
    return this.embedder.maxTokens;
  }

  embed(tokens: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    return this.embedder.embed(tokens, signal);
  }

  /** Ends a sequence now; its cells are freed at the next step boundary. */
  cancel(seq: Sequence): void {
    if (seq.finished) return;
    seq.fail(new CancelledError());
    this.metrics.requestFinished("abort");
    this.loop();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const seq of [...this.scheduler.running, ...this.scheduler.waiting] as Sequence[]) {
      seq.fail(new CancelledError("model was unloaded"));
    }
    await this.stepping;
    await this.embedder.close();
    await this.ctx.dispose();
    await this.model.dispose();
  }

  /** Starts the step loop unless it runs already. */
  private loop(): void {
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
        if (this.computesOnCpu) await afterPendingCallbacks();
      }
    } catch (error) {
      this.failAll(error);
    } finally {
      this.dropFinished();
      this.looping = false;
    }
  }

  private async step(): Promise<void> {
    const plan = this.scheduler.schedule();
    this.metrics.preempted(plan.preempted.length);
    this.start(plan);
    if (plan.entries.length === 0) {
      this.failUnschedulable();
      return;
    }
    for (const batch of this.executor.batches(plan)) {
      const outcome = await this.executor.run(batch);
      if (outcome.status === "no_room") {
        this.scheduler.rejectForNoRoom(batch);
        this.metrics.preempted(1);
        return;
      }
      this.scheduler.complete(batch);
      for (const row of outcome.rows) this.deliver(row);
    }
  }

  // Newly admitted sequences get their sampler under their (new) sequence id.
  private start(plan: StepPlan): void {
    for (const s of plan.admitted) {
      const seq = s as Sequence;
      const seqId = seq.lease!.seqId;
      this.ctx.setSampler(seqId, seq.sampler);
      const penaltyWindow = seq.tokens.slice(0, seq.promptLength);
      if (penaltyWindow.length > 0) this.ctx.acceptTokens(seqId, Int32Array.from(penaltyWindow), false);
      // After a preemption, the generated tokens replay into the grammar and penalty window.
      if (seq.generatedCount > 0) this.ctx.acceptTokens(seqId, Int32Array.from(seq.tokens.slice(seq.promptLength)), true);
      seq.noteAdmitted();
    }
  }

  private deliver(row: SampledRow): void {
    const seq = row.seq as Sequence;
    if (seq.finished) return;
    const done = seq.accept(row.token, Number.isNaN(row.logprob) ? undefined : this.logprobs(row));
    this.metrics.tokenGenerated(seq);
    if (done) {
      this.metrics.requestFinished(seq.finishReason ?? "stop");
      this.release(seq);
    }
  }

  private logprobs(row: SampledRow): TokenLogprobs {
    const piece = (id: number) => {
      const bytes = this.model.tokenBytes(id, false);
      return { token: Buffer.from(bytes).toString("utf8"), bytes: [...bytes] };
    };
    return {
      ...piece(row.token),
      logprob: row.logprob,
      top: row.top.map((t) => ({ ...piece(t.id), logprob: t.logprob })),
    };
  }

  private release(seq: Sequence): void {
    const seqId = seq.lease?.seqId;
    this.scheduler.remove(seq);
    if (seqId !== undefined) this.ctx.clearSampler(seqId);
  }

  // Cancelled or failed sequences leave at a step boundary, when no step is running.
  private dropFinished(): void {
    for (const seq of [...this.scheduler.running, ...this.scheduler.waiting] as Sequence[]) {
      if (seq.finished) this.release(seq);
    }
  }

  // Nothing could be planned: the first waiting prompt needs more cells than the cache has.
  private failUnschedulable(): void {
    const seq = this.scheduler.waiting[0] as Sequence | undefined;
    if (!seq) return;
    seq.fail(new BadRequestError(`prompt of ${seq.tokens.length} tokens does not fit in the free KV cache (${this.kv.freeCells} of ${this.ctx.nCtx} cells)`));
    this.release(seq);
  }

  private failAll(error: unknown): void {
    for (const seq of [...this.scheduler.running, ...this.scheduler.waiting] as Sequence[]) seq.fail(error);
  }
}
