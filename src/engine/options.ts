// The engine's options: those of `new Engine()` (its part of the server configuration, validated
// once), the defaults under every request's Ollama `options`, and keep-alive in milliseconds.
import os from "node:os";
import { z } from "zod";
import { BadRequestError } from "../api/errors.js";
import type { KeepAlive, Options } from "../api/ollama.js";
import { goDurationMs } from "../util/go-duration.js";

const KEEP_ALIVE_DEFAULT_MS = 5 * 60 * 1000;
export const DEFAULT_NUM_CTX = 4096;

export const FlashAttentionSchema = z.enum(["auto", "on", "off"]);
export type FlashAttention = z.infer<typeof FlashAttentionSchema>;
export const KvCacheTypeSchema = z.enum(["f16", "q8_0", "q4_0"]);
export type KvCacheType = z.infer<typeof KvCacheTypeSchema>;
export const GpuChoiceSchema = z.enum(["auto", "cuda", "cpu"]);
export type GpuChoice = z.infer<typeof GpuChoiceSchema>;

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
  /** Default context length of one sequence (num_ctx). */
  contextLength: z.int().min(16).default(DEFAULT_NUM_CTX),
  /** Total KV cells of a model's unified cache; default from contextLength and parallel. */
  kvCells: z.int().min(16).optional(),
  /**
   * Most prompt tokens in one step (chunked prefill; computed 512 at a time); the running
   * sequences' decode tokens come on top. Default 512 on the CPU, as Ollama's num_batch: every
   * prompt chunk gets its first token a step sooner than in 2,048-token steps (TTFT p50 of 8
   * concurrent requests 1.3 s instead of 2.3 s on CPU) at the same throughput. Default 2,048 with
   * the model on a GPU, as llama-server's n_batch: a burst of prompts takes a quarter of the
   * steps, each with its fixed cost (a pass over the weights, the wait for the GPU, sampling).
   */
  batchSize: z.int().min(16).max(8192).optional(),
  flashAttention: FlashAttentionSchema.default("auto"),
  kvCacheType: KvCacheTypeSchema.default("f16"),
  prefixCache: z.boolean().default(true),
  gpu: GpuChoiceSchema.default("auto"),
  threads: z.int().min(1).default(os.availableParallelism()),
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
