// One loaded model: its native model and context, and the parts that serve it: the KV manager,
// the scheduler, the executor (the only owner of the native context) and the step loop that
// drives them (step-loop.ts), plus the embeddings batcher.
import { createContext, initBackend, loadModel, type GpuChoice, type NativeContext, type NativeModel } from "../native/index.js";
import { EmbedBatcher } from "./embed-batcher.js";
import { Executor } from "./executor.js";
import { idleBlockTokens, KvManager } from "./kv-manager.js";
import { Scheduler } from "./scheduler.js";
import { EngineMetrics } from "./metrics.js";
import type { Sequence } from "./sequence.js";
import { StepLoop } from "./step-loop.js";
import type { ModelKvEvents } from "../kv-events/publisher.js";

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
  /** Where the prefix cache's block events go (vLLM's KV events), if anywhere. */
  kvEvents?: ModelKvEvents;
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
  private readonly scheduler: Scheduler<Sequence>;
  private readonly executor: Executor<Sequence>;
  private readonly loop: StepLoop;
  private readonly embedder: EmbedBatcher;

  private constructor(
    readonly path: string,
    readonly model: NativeModel,
    ctx: NativeContext,
    readonly options: RunnerOptions,
    device: Device,
  ) {
    this.kv = new KvManager(ctx.nCtx, ctx.nSeqMax, options.prefixCache, idleBlockTokens(model.info), options.kvEvents);
    this.scheduler = new Scheduler(this.kv, {
      maxRunning: maxRunning(options),
      chunkBudget: device.batchSize,
      maxWaiting: options.maxQueue,
    });
    this.executor = new Executor(ctx, !device.onGpu);
    this.loop = new StepLoop({
      scheduler: this.scheduler,
      executor: this.executor,
      kv: this.kv,
      metrics: this.metrics,
      vocab: model,
      yieldBetweenSteps: !device.onGpu,
    });
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
    return this.kv.totalCells;
  }

  get numRunning(): number {
    return this.loop.numRunning;
  }

  get numWaiting(): number {
    return this.loop.numWaiting;
  }

  kvStats() {
    return this.kv.stats();
  }

  /** Queues a sequence (BusyError when the queue is full); the step loop picks it up. */
  submit(seq: Sequence, signal?: AbortSignal): void {
    this.loop.submit(seq, signal);
  }

  /** Longest input `embed` takes, in tokens. */
  get embedMaxTokens(): number {
    return this.embedder.maxTokens;
  }

  embed(tokens: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    return this.embedder.embed(tokens, signal);
  }

  async close(): Promise<void> {
    await this.loop.close();
    this.options.kvEvents?.cleared();
    await this.embedder.close();
    await this.executor.close();
    await this.model.dispose();
  }
}
