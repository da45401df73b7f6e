// vllama's in-process Engine: concurrent streaming generate() calls, exactly as an embedding Node
// app would make them.
import os from "node:os";
import path from "node:path";
import { Engine } from "../../src/engine/engine.js";
import type { GpuChoice } from "../../src/native/index.js";
import type { BenchPrompt, RequestResult } from "../lib/load.js";
import { StepProfiler } from "../lib/step-profile.js";

export interface EngineJob {
  system: "engine";
  modelPath: string;
  gpu: GpuChoice;
  parallel: number;
  /** KV cells one request may hold (num_ctx's default); default the Engine's. */
  contextLength?: number;
  /** KV cells in all; default the engine's, sized by memory. */
  kvCells?: number;
  prefixCache: boolean;
  maxTokens: number;
  /** Also report where each burst's time went (native step vs JS between steps). */
  profile?: boolean;
  /** ggml RPC workers to spread the model's layers over. */
  rpc?: string[];
}

/** A loaded system in a worker: one request at a time or many at once, then close. */
export interface WorkerSession {
  one: (prompt: BenchPrompt) => Promise<RequestResult>;
  close: () => Promise<void>;
  profiler?: StepProfiler;
}

export function generateRequest(modelPath: string, prompt: BenchPrompt, maxTokens: number) {
  return {
    model: modelPath, prompt: prompt.text, raw: true, stream: true as const, keep_alive: -1,
    options: { num_predict: maxTokens, temperature: 0, ignore_eos: true },
  };
}

export async function openEngineSession(job: EngineJob): Promise<WorkerSession> {
  const engine = new Engine({
    modelsDir: path.join(os.tmpdir(), "vllama-bench-store"), gpu: job.gpu, parallel: job.parallel, contextLength: job.contextLength, kvCells: job.kvCells, prefixCache: job.prefixCache, rpc: job.rpc,
  });
  const one = async (prompt: BenchPrompt): Promise<RequestResult> => {
    const started = performance.now();
    let ttftMs = NaN;
    let generatedTokens = 0;
    for await (const chunk of await engine.generate(generateRequest(job.modelPath, prompt, job.maxTokens))) {
      if (Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
      if (chunk.done) generatedTokens = chunk.eval_count ?? 0;
    }
    return { ttftMs, promptTokens: prompt.tokens.length, generatedTokens };
  };
  // Load the model now, so that the first warm-up is not also the load.
  await engine.generate({ model: job.modelPath, prompt: "", keep_alive: -1 });
  const profiler = job.profile ? new StepProfiler(engine) : undefined;
  return { one, close: () => engine.close(), profiler };
}
