// The systems under test, each opened once per measurement and then driven burst by burst, so that
// a suite can interleave them: round 1 of every system, then round 2 of every system, and so on.
// Drift in the machine's speed (minutes apart, up to 30% on a shared machine) then hits every
// system alike instead of whichever ran last.
import os from "node:os";
import { openWorker, startVllamaServer } from "./child.js";
import { postStreaming } from "./http-stream.js";
import { LlamaServer, peerGpuArgs } from "./llama-cpp.js";
import { best, burst, summarize, type BenchPrompt, type BurstResult, type BurstSummary, type RequestResult } from "./load.js";
import { percentile } from "./stats.js";
import type { Backend } from "./suite.js";
import { generateRequest, type EngineJob } from "../workers/engine.js";
import { chatWithImageRequest } from "../workers/serve.js";
import type { StepProfile } from "./step-profile.js";
import type { NodeLlamaCppJob } from "../workers/node-llama-cpp.js";

export interface SystemSetup {
  modelPath: string;
  backend: Backend;
  parallel: number;
  /** KV cells one request may hold (vllama's contextLength); default vllama's own (4096, at most kvCells). */
  contextLength?: number;
  /** KV cells in all: every system gets the same. */
  kvCells: number;
  maxTokens: number;
  prefixCache?: boolean;
  /** vllama in-process: also measure where the time goes (native step vs JS between steps). */
  profile?: boolean;
  /** vllama in-process: leave `kvCells` to the engine, which sizes the cache by memory as `new Engine()` does. */
  cacheSizedByMemory?: boolean;
  /** vllama in-process: the ggml RPC workers the model's layers are spread over (engine option `rpc`). */
  rpc?: string[];
  /** The model's projector (mmproj): each request is a chat turn with its prompt's image, through each server's chat API. */
  projectorPath?: string;
}

/** A burst's results, with where the time went (`profile`) and the bytes it put on the network, where measured. */
export type ProfiledBurst = BurstResult & { profile?: StepProfile; networkBytes?: number };

/** A loaded system: requests go to it one at a time (warm-up) or all at once (a burst). */
export interface Session {
  command?: string;
  warmup(prompt: BenchPrompt): Promise<void>;
  burst(prompts: BenchPrompt[]): Promise<ProfiledBurst>;
  stop(): Promise<void>;
}

export interface SystemUnderTest {
  name: string;
  open: (setup: SystemSetup) => Promise<Session>;
}

export interface SystemRun {
  /** The round with the highest throughput. */
  best: BurstSummary;
  rounds: BurstSummary[];
  /**
   * TTFT p50 over every request of every round: a round's own p50 is one sample at N = 1, and the
   * best round is picked for throughput, not latency.
   */
  ttftP50Ms: number;
  command?: string;
  /** The best round's step profile (vllama in-process with `profile`). */
  profile?: StepProfile;
  /** The best round's network bytes, where the session counts them. */
  networkBytes?: number;
}

/** What each system is sent: its own warm-up and rounds (so no system hits another's cache). */
export interface SystemPrompts {
  warmup: BenchPrompt;
  rounds: BenchPrompt[][];
}

export async function openEngine(setup: SystemSetup): Promise<Session> {
  const job: EngineJob = {
    system: "engine", modelPath: setup.modelPath, gpu: setup.backend, parallel: setup.parallel, contextLength: setup.contextLength,
    kvCells: setup.cacheSizedByMemory ? undefined : setup.kvCells, prefixCache: setup.prefixCache ?? true, maxTokens: setup.maxTokens, profile: setup.profile,
    rpc: setup.rpc,
  };
  const worker = await openWorker(job);
  return {
    warmup: (prompt) => worker.request({ warmup: prompt }),
    burst: (prompts) => worker.request<ProfiledBurst>({ burst: prompts }),
    stop: () => worker.stop(),
  };
}

export async function openNodeLlamaCpp(setup: SystemSetup): Promise<Session> {
  const job: NodeLlamaCppJob = {
    system: "node-llama-cpp", modelPath: setup.modelPath, parallel: setup.parallel,
    contextSizePerSequence: Math.ceil(setup.kvCells / setup.parallel), maxTokens: setup.maxTokens,
  };
  const worker = await openWorker(job);
  return {
    command: `node-llama-cpp: createContext({ sequences: ${setup.parallel}, contextSize: ${job.contextSizePerSequence}, threads: ${os.availableParallelism()} })`,
    warmup: (prompt) => worker.request({ warmup: prompt }),
    burst: (prompts) => worker.request<BurstResult>({ burst: prompts }),
    stop: () => worker.stop(),
  };
}

/** A session driven from this process, one streaming HTTP request per prompt. */
function httpSession(command: string, maxTokens: number, one: (p: BenchPrompt) => Promise<RequestResult>, stop: () => Promise<void>): Session {
  return {
    command,
    warmup: async (prompt) => void (await one(prompt)),
    burst: (prompts) => burst({ prompts, maxTokens }, one),
    stop,
  };
}

/**
 * llama-server's two KV layouts, given the same cells: per-slot (`-np N -c kvCells`: a stream of
 * kvCells/N cells per slot, what Ollama runs) or unified (`-kvu`: one pool every slot draws on,
 * vllama's layout).
 */
export type LlamaServerLayout = "per-slot" | "unified";

export function openLlamaServer(layout: LlamaServerLayout): (setup: SystemSetup) => Promise<Session> {
  return async (setup) => {
    const server = await LlamaServer.start(setup.modelPath, [
      ...(setup.projectorPath ? ["--mmproj", setup.projectorPath] : []),
      "-np", String(setup.parallel), ...(layout === "unified" ? ["-kvu"] : []), "-c", String(setup.kvCells), ...peerGpuArgs(setup.backend),
    ]);
    const one = setup.projectorPath ? (p: BenchPrompt) => server.chatWithImage(p, setup.maxTokens) : (p: BenchPrompt) => server.complete(p, setup.maxTokens);
    return httpSession(server.command, setup.maxTokens, one, () => server.stop());
  };
}

/** llama-server in both layouts, as the concurrent suites run it beside vllama. */
export const LLAMA_SERVERS: SystemUnderTest[] = [
  { name: "llama-server", open: openLlamaServer("per-slot") },
  { name: "llama-server -kvu", open: openLlamaServer("unified") },
];
export const LLAMA_SERVER_NAMES = LLAMA_SERVERS.map((sys) => sys.name);

export async function openVllamaHttp(setup: SystemSetup): Promise<Session> {
  const vision = setup.projectorPath ? { model: setup.modelPath, projector: setup.projectorPath } : undefined;
  const server = await startVllamaServer({
    system: "serve", gpu: setup.backend, parallel: setup.parallel, contextLength: setup.contextLength, kvCells: setup.kvCells, prefixCache: setup.prefixCache ?? true, vision,
  });
  const [route, request] = vision ? ["/api/chat", chatWithImageRequest] as const : ["/api/generate", generateRequest] as const;
  const one = async (prompt: BenchPrompt): Promise<RequestResult> => {
    const { ttftMs, chunks } = await postStreaming(`${server.url}${route}`, request(setup.modelPath, prompt, setup.maxTokens));
    const last = chunks[chunks.length - 1] as { done?: boolean; eval_count?: number; error?: string };
    if (last?.error) throw new Error(`vllama: ${last.error}`);
    return { ttftMs, promptTokens: prompt.tokens.length, generatedTokens: last?.eval_count ?? 0 };
  };
  const command = `vllama HTTP server (bench/workers/serve.ts: Engine({ parallel: ${setup.parallel}, contextLength: ${setup.contextLength}, kvCells: ${setup.kvCells}${setup.prefixCache === false ? ", prefixCache: false" : ""} }) + startServer), POST ${route} streaming`;
  return httpSession(command, setup.maxTokens, one, server.stop);
}

/**
 * Opens every system (all stay loaded; an idle one only waits), warms each up, then runs the
 * rounds interleaved: round r of every system before round r + 1 of any.
 */
export async function runInterleaved(
  systems: Array<SystemUnderTest & { setup: SystemSetup; prompts: SystemPrompts }>,
): Promise<Record<string, SystemRun>> {
  const sessions: Session[] = [];
  try {
    for (const sys of systems) sessions.push(await sys.open(sys.setup));
    for (const [i, sys] of systems.entries()) await sessions[i].warmup(sys.prompts.warmup);
    const results: ProfiledBurst[][] = systems.map(() => []);
    const roundCount = Math.max(...systems.map((s) => s.prompts.rounds.length));
    for (let round = 0; round < roundCount; round++) {
      for (const [i, sys] of systems.entries()) {
        const prompts = sys.prompts.rounds[round];
        if (prompts) results[i].push(await sessions[i].burst(prompts));
      }
    }
    return Object.fromEntries(systems.map((sys, i) => {
      const rounds = results[i].map((r, k) => summarize({ prompts: sys.prompts.rounds[k], maxTokens: sys.setup.maxTokens }, r));
      const top = best(rounds);
      const ttftP50Ms = percentile(results[i].flatMap((r) => r.requests.map((q) => q.ttftMs)), 0.5);
      const topBurst = results[i][rounds.indexOf(top)];
      return [sys.name, { best: top, rounds, ttftP50Ms, command: sessions[i].command, profile: topBurst?.profile, networkBytes: topBurst?.networkBytes }];
    }));
  } finally {
    await Promise.all(sessions.map((s) => s.stop()));
  }
}
