// node-llama-cpp 3.22 with its prebuilt CPU binaries: one context with N sequences, N
// concurrent generations (its own batching of sequences into one decode).
import os from "node:os";
import { getLlama, type LlamaContextSequence, type Token } from "node-llama-cpp";
import type { BenchPrompt, RequestResult } from "../lib/load.js";
import type { WorkerSession } from "./engine.js";

export interface NodeLlamaCppJob {
  system: "node-llama-cpp";
  modelPath: string;
  parallel: number;
  /** Cells per sequence (node-llama-cpp gives each sequence its own). */
  contextSizePerSequence: number;
  maxTokens: number;
}

export async function openNodeLlamaCppSession(job: NodeLlamaCppJob): Promise<WorkerSession> {
  const llama = await getLlama({ gpu: false, build: "never" });
  const model = await llama.loadModel({ modelPath: job.modelPath });
  // Its default is 2 threads per core (4 here); on a busy 2-core machine, more spinning threads
  // than cores is many times slower, so it gets the cores, as vllama and llama.cpp do.
  const context = await model.createContext({ sequences: job.parallel, contextSize: job.contextSizePerSequence, threads: os.availableParallelism() });
  const free = Array.from({ length: job.parallel }, () => context.getSequence());
  const one = async (prompt: BenchPrompt): Promise<RequestResult> => {
    const sequence = free.pop() as LlamaContextSequence;
    try {
      await sequence.clearHistory();
      const started = performance.now();
      let ttftMs = NaN;
      let generatedTokens = 0;
      for await (const _token of sequence.evaluate(prompt.tokens as Token[], { temperature: 0, yieldEogToken: true })) {
        if (generatedTokens++ === 0) ttftMs = performance.now() - started;
        if (generatedTokens >= job.maxTokens) break;
      }
      return { ttftMs, promptTokens: prompt.tokens.length, generatedTokens };
    } finally {
      free.push(sequence);
    }
  };
  const close = async () => {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  };
  return { one, close };
}
