// Options of `new Engine()`: the engine's part of the server configuration, validated once.
import os from "node:os";
import { z } from "zod";

const KEEP_ALIVE_DEFAULT_MS = 5 * 60 * 1000;

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
  contextLength: z.int().min(16).default(4096),
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
  flashAttention: z.enum(["auto", "on", "off"]).default("auto"),
  kvCacheType: z.enum(["f16", "q8_0", "q4_0"]).default("f16"),
  prefixCache: z.boolean().default(true),
  gpu: z.enum(["auto", "cuda", "cpu"]).default("auto"),
  threads: z.int().min(1).default(os.availableParallelism()),
});

export type EngineOptions = z.output<typeof EngineOptionsSchema>;
