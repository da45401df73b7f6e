// The engine's options: those of `new Engine()` (its part of the server configuration, validated
// once), the defaults under every request's Ollama `options`, and keep-alive in milliseconds.
import os from "node:os";
import { z } from "zod";
import { BadRequestError } from "../api/errors.js";
import type { KeepAlive, Options } from "../api/ollama.js";
import {
  FLASH_ATTENTION_MODES, GPU_CHOICES, KV_CACHE_TYPES, type FlashAttention, type GpuChoice, type KvCacheType,
} from "../native/index.js";
import { goDurationMs } from "../util/go-duration.js";
import { parseRpcWorkers } from "./rpc-workers.js";

const KEEP_ALIVE_DEFAULT_MS = 5 * 60 * 1000;
export const DEFAULT_NUM_CTX = 4096;
// Prompt tokens per step (batchSize, num_batch): llama.cpp computes steps in pieces of 512.
const BATCH_SIZE_MIN = 16;
const BATCH_SIZE_MAX = 8192;

export const FlashAttentionSchema = z.enum(FLASH_ATTENTION_MODES);
export const KvCacheTypeSchema = z.enum(KV_CACHE_TYPES);
export const GpuChoiceSchema = z.enum(GPU_CHOICES);
export type { FlashAttention, GpuChoice, KvCacheType };

export const EngineOptionsSchema = z.object({
  /** Ollama-layout model store; default VLLAMA_MODELS, OLLAMA_MODELS or ~/.ollama/models. */
  modelsDir: z.string().optional(),
  /** Sequences generating at once per model, batched into every step. */
  parallel: z.int().min(1).max(256).default(32),
  /** Requests waiting beyond `parallel` before new ones are refused as busy. */
  maxQueue: z.int().min(0).default(512),
  maxLoadedModels: z.int().min(1).default(3),
  /** Default keep-alive of a loaded model after its last request (Infinity: forever). */
  keepAliveMs: z.number().min(0).default(KEEP_ALIVE_DEFAULT_MS),
  /**
   * Default context length of one sequence (num_ctx); default per model load: its trained context
   * where the memory-sized KV cache holds `parallel` of them, else what one sequence can have.
   */
  contextLength: z.int().min(16).optional(),
  /** The operator's cap on the tokens one request generates (`--max-tokens`); default none. */
  maxTokens: z.int().min(1).optional(),
  /** Total KV cells of a model's unified cache; default sized from memory at each model load. */
  kvCells: z.int().min(16).optional(),
  /**
   * Share of the memory left after the weights that the KV cache takes (GPU: its free memory;
   * CPU: free RAM); default DEFAULT_MEMORY_SHARE (0.9 on a GPU, 0.5 on the CPU).
   */
  memoryShare: z.number().gt(0).max(1).optional(),
  /**
   * Most prompt tokens in one step (chunked prefill; computed 512 at a time); the running
   * sequences' decode tokens come on top. Default 512 on the CPU, as Ollama's num_batch: every
   * prompt chunk gets its first token a step sooner than in 2,048-token steps (TTFT p50 of 8
   * concurrent requests 1.3 s instead of 2.3 s on CPU) at the same throughput. Default 2,048 with
   * the model on a GPU, as llama-server's n_batch: a burst of prompts takes a quarter of the
   * steps, each with its fixed cost (a pass over the weights, the wait for the GPU, sampling).
   */
  batchSize: z.int().min(BATCH_SIZE_MIN).max(BATCH_SIZE_MAX).optional(),
  flashAttention: FlashAttentionSchema.default("auto"),
  kvCacheType: KvCacheTypeSchema.default("f16"),
  prefixCache: z.boolean().default(true),
  gpu: GpuChoiceSchema.default("auto"),
  threads: z.int().min(1).default(os.availableParallelism()),
  /**
   * Publish the prefix cache's block events (vLLM's KV-event format over ZeroMQ PUB) for a
   * prefix-cache-aware router: `tcp://*:PORT` binds, `tcp://HOST:PORT` connects (llm-d's indexer).
   */
  kvEventsEndpoint: z.string().optional(),
  /** The pod named in the events' topic `kv@POD@MODEL` (llm-d matches it to the pod's address). */
  kvEventsPod: z.string().min(1).default(os.hostname()),
  /**
   * RPC workers (`vllama worker`, llama.cpp's rpc-server) as "host:port": every model's layers
   * are spread over the local device and them, as llama.cpp's `--rpc` does (docs/SCALE-OUT.md).
   */
  rpc: z.array(z.string()).default([]).superRefine((workers, ctx) => {
    try {
      parseRpcWorkers(workers);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message });
    }
  }),
  /** How long an RPC worker may take to accept or answer before it counts as lost (Infinity: no limit). */
  rpcTimeoutMs: z.number().min(1).default(120_000),
});

export type EngineOptions = z.output<typeof EngineOptionsSchema>;

/**
 * keep_alive in milliseconds: a number is seconds, a string a Go duration; negative means
 * forever (Infinity), 0 unloads at once, absent takes the server default.
 */
export function parseKeepAlive(value: KeepAlive | undefined, defaultMs: number): number {
  if (value === undefined) return defaultMs;
  const ms = typeof value === "number" ? value * 1000 : goDurationMs(value);
  if (ms === undefined) throw new BadRequestError(`invalid keep_alive: ${JSON.stringify(value)}`);
  return ms < 0 ? Infinity : ms;
}

/** Every option with a value; `num_gpu` -1, `num_thread` 0 and absent `use_mmap` mean "decide". */
export type ResolvedOptions = Required<Omit<Options, "use_mmap">> & { use_mmap?: boolean };

/** Ollama's defaults (api.DefaultOptions), except num_ctx, which the server configures. */
const OLLAMA_DEFAULTS: Omit<ResolvedOptions, "num_ctx"> = {
  num_keep: 4,
  seed: -1,
  num_predict: -1,
  top_k: 40,
  top_p: 0.9,
  min_p: 0,
  typical_p: 1,
  repeat_last_n: 64,
  temperature: 0.8,
  repeat_penalty: 1.0,
  presence_penalty: 0,
  frequency_penalty: 0,
  stop: [],
  ignore_eos: false,
  min_tokens: 0,
  logit_bias: {},
  num_batch: 512,
  num_gpu: -1,
  main_gpu: 0,
  num_thread: 0,
};

function definedEntries(options: Partial<Options> | undefined): Partial<Options> {
  return Object.fromEntries(Object.entries(options ?? {}).filter(([, v]) => v !== undefined));
}

/**
 * The one place defaults live: request options over the model's Modelfile parameters over
 * Ollama's defaults (num_ctx from the server configuration).
 */
export function resolveOptions(
  requestOptions: Partial<Options> | undefined,
  modelParameters: Partial<Options> | undefined,
  defaultNumCtx: number = DEFAULT_NUM_CTX,
): ResolvedOptions {
  return {
    ...OLLAMA_DEFAULTS,
    num_ctx: defaultNumCtx,
    ...definedEntries(modelParameters),
    ...definedEntries(requestOptions),
  };
}

/** num_predict under the operator's cap: -1 (until the context ends) and -2 (fill it) get the cap. */
export function cappedNumPredict(numPredict: number, maxTokens: number | undefined): number {
  if (maxTokens === undefined) return numPredict;
  return numPredict < 0 ? maxTokens : Math.min(numPredict, maxTokens);
}

/**
 * What a model is loaded with. A request whose settings differ from a loaded model's loads the
 * model again as another entry of the pool, as Ollama reloads it; num_ctx does only where it is
 * larger than the loaded model's per-request context (model-pool.ts).
 */
export interface LoadSettings {
  /**
   * num_ctx the request asks (request over Modelfile): the cache holds `parallel` sequences of it
   * where memory allows. Undefined without one, and where the operator fixed the cache's size
   * (kvCells): num_ctx then only limits a sequence, to at most the whole cache.
   */
  contextRequested?: number;
  /** Prompt tokens per step (num_batch); undefined: by device (512 CPU, 2,048 GPU). */
  batchSize?: number;
  /** Compute threads (num_thread). */
  threads: number;
  /** Layers offloaded to the GPU (num_gpu); undefined: all when a GPU is used. */
  gpuLayers?: number;
  /** The GPU that holds the model (main_gpu), an index among the devices found. */
  mainGpu: number;
  /** Map the weights from the file (use_mmap); undefined: llama.cpp's default (yes). */
  useMmap?: boolean;
}

/**
 * Load settings of a request: its `options` over the model's Modelfile parameters over the
 * engine's settings (`num_thread` 0 and `num_gpu` -1 take the engine's). A value the engine
 * cannot load with is a BadRequestError naming the option.
 */
export function resolveLoadSettings(
  requestOptions: Partial<Options> | undefined,
  modelParameters: Partial<Options> | undefined,
  engine: Pick<EngineOptions, "batchSize" | "threads" | "kvCells">,
  gpuCount: number,
): LoadSettings {
  const o: Partial<Options> = { ...definedEntries(modelParameters), ...definedEntries(requestOptions) };
  if (o.num_batch !== undefined && (o.num_batch < BATCH_SIZE_MIN || o.num_batch > BATCH_SIZE_MAX)) {
    throw new BadRequestError(`invalid option num_batch: ${o.num_batch} (expected ${BATCH_SIZE_MIN} to ${BATCH_SIZE_MAX})`);
  }
  // As Ollama, main_gpu 0 is valid without a GPU (the model then runs on the CPU).
  if (o.main_gpu !== undefined && o.main_gpu >= Math.max(1, gpuCount)) {
    throw new BadRequestError(`invalid option main_gpu: ${o.main_gpu} (${gpuCount} GPU${gpuCount === 1 ? "" : "s"} found)`);
  }
  return {
    contextRequested: engine.kvCells === undefined ? o.num_ctx : undefined,
    batchSize: o.num_batch ?? engine.batchSize,
    threads: o.num_thread || engine.threads,
    gpuLayers: o.num_gpu === undefined || o.num_gpu < 0 ? undefined : o.num_gpu,
    mainGpu: o.main_gpu ?? 0,
    useMmap: o.use_mmap,
  };
}
