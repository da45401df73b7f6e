// One loaded model: its native model and context, and the parts that serve it: the KV manager,
// the scheduler, the executor (the only owner of the native context) and the step loop that
// drives them (step-loop.ts), plus the embeddings batcher.
import os from "node:os";
import { BadRequestError, RpcWorkerError } from "../api/errors.js";
import {
  createContext, initBackend, loadModel, loadProjector, type DeviceMemory, type FlashAttention, type GpuChoice, type KvCacheType,
  type NativeContext, type NativeModel, type NativeProjector,
} from "../native/index.js";
import { EmbedBatcher } from "./embed-batcher.js";
import { EncoderCache } from "./encoder-cache.js";
import { Executor } from "./executor.js";
import { DEFAULT_MEMORY_SHARE, kvBytesPerCell, sizeKvCache, type KvSizing } from "./kv-sizing.js";
import { idleBlockTokens, KvManager } from "./kv-manager.js";
import { MediaIds, tokenizeWithMedia, withChunkIds, type MediaLimits, type MediaPrompt } from "./media.js";
import { PreparedMediaCache, type PrepareFile } from "./prepared-media.js";
import { Scheduler } from "./scheduler.js";
import { EngineMetrics } from "./metrics.js";
import type { LoadSettings } from "./options.js";
import type { Sequence } from "./sequence.js";
import { StepLoop } from "./step-loop.js";
import type { ModelKvEvents } from "../kv-events/publisher.js";
import { ConcurrencyLimit } from "../util/concurrency-limit.js";

export interface RunnerOptions extends LoadSettings {
  /** Total KV cells of the unified cache (shared by all sequences); default sized from memory. */
  kvCells?: number;
  /** Default per-request context (num_ctx); default from the KV cache sizing. */
  contextLength?: number;
  /** Share of the memory left after the weights that the KV cache takes; default by device. */
  memoryShare?: number;
  /** Most sequences generating at once. */
  parallel: number;
  /** Most requests waiting beyond `parallel`. */
  maxQueue: number;
  flashAttention: FlashAttention;
  kvCacheType: KvCacheType;
  prefixCache: boolean;
  gpu: GpuChoice;
  /** Where the prefix cache's block events go (vLLM's KV events), if anywhere. */
  kvEvents?: ModelKvEvents;
  /** RPC workers ("host:port") holding layers beside the local device (engine option `rpc`). */
  rpc: string[];
  /** Bound on each connect and answer of an RPC worker (Infinity: none). */
  rpcTimeoutMs: number;
}

/** What one RPC worker holds of a loaded model, in bytes (`/api/ps`, `/health`). */
export interface RpcWorkerShare {
  endpoint: string;
  modelBytes: number;
  kvBytes: number;
  computeBytes: number;
}

// Sequence ids: running sequences plus sequences that hold cached prefixes (llama.cpp's maximum).
const MAX_SEQ_IDS = 256;
// llama.cpp's default physical batch for prompt chunks: larger chunks are computed in pieces.
const UBATCH_SIZE = 512;
// Image rows the encoder cache keeps: those of two full steps (a step's images are kept for the
// next, where the sequences that waited for a shared image's blocks finish it).
const ENCODER_CACHE_STEPS = 2;
// Default prompt tokens per step: Ollama's num_batch on the CPU, llama-server's n_batch on a GPU.
const CPU_BATCH_SIZE = 512;
const GPU_BATCH_SIZE = 2048;
/** Media files prepared at once on the CPU (see mediaPreparing). */
const MEDIA_PREPARING_ON_CPU = 2;
// Rows of the media chunks kept prepared (their pixels, preprocessed as F32; the bytes of a row
// follow the projector's input pixels per row): 4,096 rows hold 7 LLaVA-1.5 images (576 rows,
// 1.4 MB each), 16 Gemma 3 images (256 rows, 9.6 MB each) or 16 Qwen2-VL images of 256 rows
// (2.4 MB each).
const PREPARED_MEDIA_ROWS = 4096;

function parallelOf(options: RunnerOptions): number {
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

/**
 * Bytes the KV cache may come from once the weights are loaded: the GPU's free memory, or free
 * RAM less the weights when they are mapped (they sit in the page cache that freemem counts).
 */
function memoryForCache(model: NativeModel, device: Device, options: RunnerOptions): number {
  if (device.onGpu) return model.deviceMemory().free;
  const mappedWeights = options.useMmap === false ? 0 : model.info.sizeBytes;
  return Math.max(0, os.freemem() - mappedWeights);
}

function sizeCache(model: NativeModel, device: Device, options: RunnerOptions): KvSizing {
  return sizeKvCache({
    bytesPerCell: kvBytesPerCell(model.info, options.kvCacheType),
    memoryFree: memoryForCache(model, device, options),
    memoryShare: options.memoryShare ?? DEFAULT_MEMORY_SHARE[device.onGpu ? "gpu" : "cpu"],
    parallel: parallelOf(options),
    contextTrained: model.info.contextLengthTrained,
    contextLength: options.contextLength,
    contextRequested: options.contextRequested,
    kvCells: options.kvCells,
  });
}

export class ModelRunner {
  readonly metrics = new EngineMetrics();
  private readonly kv: KvManager;
  private readonly scheduler: Scheduler<Sequence>;
  private readonly executor: Executor<Sequence>;
  private readonly loop: StepLoop;
  private readonly embedder: EmbedBatcher;
  /** Prompt tokens per step. */
  readonly batchSize: number;
  /** Per RPC worker, its share of the weights, KV cache and compute buffers. */
  readonly rpcShares: RpcWorkerShare[];
  private readonly workerLostListeners: Array<(error: RpcWorkerError) => void> = [];
  private lostWorker = false;

  /** The projector's recent output by image content, when the model takes images. */
  readonly encoderCache: EncoderCache | undefined;
  /** Image placeholders of this runner's prefix cache (media.ts). */
  private readonly mediaIds = new MediaIds();
  private readonly mediaLimits: MediaLimits;
  /**
   * On the CPU, at most two media files are prepared (decoded and resized) at once: the steps' threads
   * own the cores, and every job beside them slows each barrier of the step. 32 requests on one
   * image, tokenized at once on libuv's 4 threads, started the first step 51-197 ms into the
   * burst and slowed its 7-token call to 90-130 ms; one at a time, 18-33 ms and 13-66 ms, and the
   * burst's TTFT p50 670-830 ms against 891-939; two at a time, 623-755 ms (2 cores,
   * llama110m-vision, 2026-12-02). Two, not one, so that a prompt of the largest images (an
   * 8000 x 8000 PNG takes 0.8 s) does not hold every other image request behind it. With the
   * model on a GPU the cores are free while it computes, and images are prepared in parallel.
   */
  private readonly mediaPreparing: ConcurrencyLimit | undefined;
  /** Prepared media files by content, with the prefix cache on (prepared-media.ts). */
  private readonly preparedMedia: PreparedMediaCache | undefined;
  private mediaPrepares = 0;

  private constructor(
    readonly path: string,
    readonly model: NativeModel,
    ctx: NativeContext,
    readonly options: RunnerOptions,
    device: Device,
    /** The KV cache's size and the default per-request context that came with it. */
    readonly kvSizing: KvSizing,
    /** The model's projector, when it takes images. */
    readonly projector: NativeProjector | undefined,
    nUbatch: number,
  ) {
    this.kv = new KvManager(ctx.kvCells, ctx.nSeqMax, options.prefixCache, idleBlockTokens(model.info), options.kvEvents);
    this.batchSize = device.batchSize;
    this.scheduler = new Scheduler(this.kv, {
      parallel: parallelOf(options),
      batchSize: device.batchSize,
      maxWaiting: options.maxQueue,
    });
    this.encoderCache = projector && new EncoderCache((chunk) => projector.encode(chunk), ENCODER_CACHE_STEPS * device.batchSize, options.prefixCache);
    this.executor = new Executor(ctx, !device.onGpu, this.encoderCache && ((chunk, request) => this.encoderCache!.rows(chunk, request)));
    this.mediaLimits = { maxRows: device.batchSize, maxNonCausalRows: Math.min(device.batchSize, nUbatch) };
    this.mediaPreparing = device.onGpu ? undefined : new ConcurrencyLimit(MEDIA_PREPARING_ON_CPU);
    this.preparedMedia = projector && options.prefixCache ? new PreparedMediaCache(this.prepareFile, PREPARED_MEDIA_ROWS) : undefined;
    this.loop = new StepLoop({
      scheduler: this.scheduler,
      executor: this.executor,
      kv: this.kv,
      metrics: this.metrics,
      vocab: model,
      yieldBetweenSteps: !device.onGpu,
      onWorkerLost: (error) => this.workerLost(error),
    });
    this.rpcShares = rpcShares(ctx.memoryByDevice, options.rpc);
    this.embedder = new EmbedBatcher(model, options);
  }

  static async load(files: { model: string; projector?: string }, options: RunnerOptions, onProgress?: (p: number) => void): Promise<ModelRunner> {
    const device = deviceFor(options);
    const model = await loadModel(files.model, {
      gpu: options.gpu, gpuLayers: options.gpuLayers, mainGpu: options.mainGpu, useMmap: options.useMmap, onProgress,
      rpc: options.rpc, rpcTimeoutMs: options.rpcTimeoutMs === Infinity ? 0 : options.rpcTimeoutMs,
    });
    let projector: NativeProjector | undefined;
    try {
      // The encoder computes inside the step (executor.ts), on num_thread threads as the context
      // does: a 16-row encode took 270-440 ms p50 on 2 threads, 0.4-0.7 ms on 1, on a 2-core
      // machine at load 11-13 (ggml's barriers spin), so num_thread must reach it too.
      projector = files.projector === undefined ? undefined : await loadProjector(model, files.projector, options.threads);
      const sizing = sizeCache(model, device, options);
      const nUbatch = Math.min(device.batchSize, UBATCH_SIZE) + parallelOf(options);
      const ctx = await createContext(model, {
        kvCells: sizing.kvCells,
        nSeqMax: MAX_SEQ_IDS,
        // Room for a full prompt chunk and every running sequence's decode token, computed in one
        // pass when the chunk fits UBATCH_SIZE (a pass over the weights per piece).
        batchCapacity: device.batchSize + parallelOf(options),
        nUbatch,
        flashAttn: options.flashAttention,
        typeK: options.kvCacheType,
        typeV: options.kvCacheType,
        threads: options.threads,
      });
      return new ModelRunner(files.model, model, ctx, options, device, sizing, projector, nUbatch);
    } catch (error) {
      await projector?.dispose();
      await model.dispose();
      throw error;
    }
  }

  /** A prompt with images: `text` holds the projector's marker once per image (BadRequestError without a projector). */
  tokenizeWithMedia(name: string, text: string, images: Uint8Array[], addSpecial: boolean): Promise<MediaPrompt> {
    const projector = this.projector;
    if (!projector?.vision) throw new BadRequestError(`${name} does not support images`);
    const prepare = this.preparedMedia ? this.preparedMedia.prepared.bind(this.preparedMedia) : this.prepareFile;
    return tokenizeWithMedia(projector, prepare, this.mediaIds, text, images, addSpecial, this.mediaLimits);
  }

  /** Decodes and preprocesses one media file (on the CPU, at most MEDIA_PREPARING_ON_CPU at once). */
  private readonly prepareFile: PrepareFile = (file, name) => {
    this.mediaPrepares++;
    const prepare = () => this.projector!.prepare(file, { name }).then(withChunkIds);
    return this.mediaPreparing ? this.mediaPreparing.run(prepare) : prepare();
  };

  /** Media files decoded and preprocessed (the others were found prepared). */
  get mediaPrepareCount(): number {
    return this.mediaPrepares;
  }

  get kvCells(): number {
    return this.kv.kvCells;
  }

  /** Default per-request context (num_ctx) of this model's cache. */
  get contextLength(): number {
    return this.kvSizing.contextLength;
  }

  get parallel(): number {
    return parallelOf(this.options);
  }

  get numRunning(): number {
    return this.loop.numRunning;
  }

  get numWaiting(): number {
    return this.loop.numWaiting;
  }

  /** Whether the next request would get 503 busy. */
  get queueFull(): boolean {
    return this.loop.queueFull;
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

  async embed(tokens: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    try {
      return await this.embedder.embed(tokens, signal);
    } catch (error) {
      if (error instanceof RpcWorkerError) this.workerLost(error);
      throw error;
    }
  }

  /** Called once if an RPC worker is lost: the model cannot compute any more and must be reloaded. */
  onWorkerLost(listener: (error: RpcWorkerError) => void): void {
    this.workerLostListeners.push(listener);
  }

  private workerLost(error: RpcWorkerError): void {
    if (this.lostWorker) return;
    this.lostWorker = true;
    for (const listener of this.workerLostListeners) listener(error);
  }

  async close(): Promise<void> {
    await this.loop.close();
    this.options.kvEvents?.cleared();
    await this.embedder.close();
    await this.executor.close();
    await this.projector?.dispose();
    await this.model.dispose();
  }
}

/** The RPC devices' shares, by worker (a worker with several devices sums them). */
function rpcShares(memory: DeviceMemory[], workers: string[]): RpcWorkerShare[] {
  return workers.map((endpoint) => {
    const held = memory.filter((d) => d.device.startsWith("RPC") && d.description === endpoint);
    const sum = (pick: (d: DeviceMemory) => number) => held.reduce((total, d) => total + pick(d), 0);
    return { endpoint, modelBytes: sum((d) => d.modelBytes), kvBytes: sum((d) => d.contextBytes), computeBytes: sum((d) => d.computeBytes) };
  });
}
