// vllama's in-process Engine: N concurrent streaming generate() calls per burst, exactly as an
// embedding Node app would make them.
import os from "node:os";
import path from "node:path";
import { Engine } from "../../src/engine/engine.js";
import type { GpuChoice } from "../../src/native/index.js";
import { burst, type BenchPrompt, type BurstResult, type RequestResult } from "../lib/load.js";
import { StepProfiler, type StepProfile } from "../lib/step-profile.js";

export interface EngineJob {
  system: "engine";
  modelPath: string;
  gpu: GpuChoice;
  parallel: number;
  kvCells: number;
  prefixCache: boolean;
  maxTokens: number;
  /** One burst per round; a fresh prompt set each round, so nothing is cached across rounds. */
  rounds: BenchPrompt[][];
  warmup: BenchPrompt;
  /** Also report where each burst's time went (native step vs JS between steps). */
  profile?: boolean;
}

export type EngineBurstResult = BurstResult & { profile?: StepProfile };

export function generateRequest(modelPath: string, prompt: BenchPrompt, maxTokens: number) {
  return {
    model: modelPath, prompt: prompt.text, raw: true, stream: true as const, keep_alive: -1,
    options: { num_predict: maxTokens, temperature: 0, ignore_eos: true },
  };
}

export async function runEngineJob(job: EngineJob): Promise<EngineBurstResult[]> {
  const profiler = job.profile ? StepProfiler.install() : undefined;
  const engine = new Engine({
    modelsDir: path.join(os.tmpdir(), "vllama-bench-store"), gpu: job.gpu, parallel: job.parallel, kvCells: job.kvCells, prefixCache: job.prefixCache,
  });
  try {
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
    await one(job.warmup);
    const results: EngineBurstResult[] = [];
    for (const prompts of job.rounds) {
      profiler?.reset();
      const result = await burst({ prompts, maxTokens: job.maxTokens }, one);
      results.push(profiler ? { ...result, profile: profiler.summary() } : result);
    }
    return results;
  } finally {
    await engine.close();
  }
}
