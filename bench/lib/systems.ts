// The systems under test, each driven through one burst interface: given N, a number of rounds
// and a prompt factory, run a warm-up and then one burst per round; return every round's summary.
import os from "node:os";
import { runWorker, startVllamaServer } from "./child.js";
import { postStreaming } from "./http-stream.js";
import { LlamaServer, peerGpuArgs } from "./llama-cpp.js";
import type { Backend } from "./suite.js";
import { best, burst, summarize, type BenchPrompt, type BurstResult, type BurstSummary, type RequestResult } from "./load.js";
import { generateRequest, type EngineBurstResult, type EngineJob } from "../workers/engine.js";
import type { StepProfile } from "./step-profile.js";
import type { NodeLlamaCppJob } from "../workers/node-llama-cpp.js";

export interface BurstPlan {
  modelPath: string;
  backend: Backend;
  parallel: number;
  kvCells: number;
  maxTokens: number;
  /** Prompts of each round; every system gets its own, so caches start cold. */
  rounds: BenchPrompt[][];
  warmup: BenchPrompt;
  prefixCache?: boolean;
  /** vllama in-process: also measure where the time goes (native step vs JS between steps). */
  profile?: boolean;
}

export interface SystemRun {
  best: BurstSummary;
  rounds: BurstSummary[];
  command?: string;
  /** The best round's step profile (vllama in-process with `profile`). */
  profile?: StepProfile;
}

function summarizeAll(plan: BurstPlan, results: BurstResult[]): SystemRun {
  const rounds = results.map((r, i) => summarize({ prompts: plan.rounds[i], maxTokens: plan.maxTokens }, r));
  return { best: best(rounds), rounds };
}

export async function runEngine(plan: BurstPlan): Promise<SystemRun> {
  const job: EngineJob = {
    system: "engine", modelPath: plan.modelPath, gpu: plan.backend, parallel: plan.parallel, kvCells: plan.kvCells,
    prefixCache: plan.prefixCache ?? true, maxTokens: plan.maxTokens, rounds: plan.rounds, warmup: plan.warmup, profile: plan.profile,
  };
  const results = await runWorker<EngineBurstResult[]>(job);
  const run = summarizeAll(plan, results);
  return { ...run, profile: results[run.rounds.indexOf(run.best)]?.profile };
}

export async function runNodeLlamaCpp(plan: BurstPlan): Promise<SystemRun> {
  const job: NodeLlamaCppJob = {
    system: "node-llama-cpp", modelPath: plan.modelPath, parallel: plan.parallel,
    contextSizePerSequence: Math.ceil(plan.kvCells / plan.parallel), maxTokens: plan.maxTokens, rounds: plan.rounds, warmup: plan.warmup,
  };
  const run = summarizeAll(plan, await runWorker<BurstResult[]>(job));
  return { ...run, command: `node-llama-cpp: createContext({ sequences: ${plan.parallel}, contextSize: ${job.contextSizePerSequence}, threads: ${os.availableParallelism()} })` };
}

async function rounds(plan: BurstPlan, one: (p: BenchPrompt) => Promise<RequestResult>): Promise<BurstResult[]> {
  await one(plan.warmup);
  const results: BurstResult[] = [];
  for (const prompts of plan.rounds) results.push(await burst({ prompts, maxTokens: plan.maxTokens }, one));
  return results;
}

export async function runLlamaServer(plan: BurstPlan): Promise<SystemRun> {
  const server = await LlamaServer.start(plan.modelPath, ["-np", String(plan.parallel), "-kvu", "-c", String(plan.kvCells), ...peerGpuArgs(plan.backend)]);
  try {
    const results = await rounds(plan, (p) => server.complete(p, plan.maxTokens));
    return { ...summarizeAll(plan, results), command: server.command };
  } finally {
    await server.stop();
  }
}

export async function runVllamaHttp(plan: BurstPlan): Promise<SystemRun> {
  const server = await startVllamaServer({ system: "serve", gpu: plan.backend, parallel: plan.parallel, kvCells: plan.kvCells, prefixCache: plan.prefixCache ?? true });
  try {
    const one = async (prompt: BenchPrompt): Promise<RequestResult> => {
      const { ttftMs, chunks } = await postStreaming(`${server.url}/api/generate`, generateRequest(plan.modelPath, prompt, plan.maxTokens));
      const last = chunks[chunks.length - 1] as { done?: boolean; eval_count?: number; error?: string };
      if (last?.error) throw new Error(`vllama: ${last.error}`);
      return { ttftMs, promptTokens: prompt.tokens.length, generatedTokens: last?.eval_count ?? 0 };
    };
    const results = await rounds(plan, one);
    return {
      ...summarizeAll(plan, results),
      command: `vllama HTTP server (bench/workers/serve.ts: Engine({ parallel: ${plan.parallel}, kvCells: ${plan.kvCells} }) + startServer), POST /api/generate streaming`,
    };
  } finally {
    await server.stop();
  }
}
