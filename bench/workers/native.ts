// vllama's native step, driven directly: the same work llama-batched-bench does (N sequences,
// all prompts prefilled in n_batch chunks, then one token per sequence per step), plus greedy
// sampling of every sequence's next token, which batched-bench skips.
import { createContext, loadModel, type GpuChoice, type NativeContext, type SamplerParams, type StepResult } from "../../src/native/index.js";

export interface NativeJob {
  system: "native";
  modelPath: string;
  gpu: GpuChoice;
  nCtx: number;
  nBatch: number;
  nUbatch: number;
  /** One run per entry: prompts of one burst (token ids), `genTokens` decode steps after. */
  runs: Array<{ prompts: number[][] }>;
  genTokens: number;
}

export interface NativeRunResult {
  parallel: number;
  tokens: number;
  prefillMs: number;
  decodeMs: number;
  tokensPerSecond: number;
  /** The addon's own timings over all steps: llama_decode and sampling. */
  nativeDecodeMs: number;
  nativeSampleMs: number;
}

const GREEDY: SamplerParams = {
  temperature: 0, topK: 40, topP: 1, minP: 0, typicalP: 1, seed: 0,
  repeatLastN: 0, repeatPenalty: 1, presencePenalty: 0, frequencyPenalty: 0,
};

export async function runNativeJob(job: NativeJob): Promise<{ threads: number; results: NativeRunResult[] }> {
  const model = await loadModel(job.modelPath, { gpu: job.gpu });
  const maxSeqs = Math.max(...job.runs.map((r) => r.prompts.length));
  const ctx = await createContext(model, { kvCells: job.nCtx, nSeqMax: maxSeqs, batchCapacity: job.nBatch, nUbatch: job.nUbatch });
  try {
    const results: NativeRunResult[] = [];
    // The first run warms caches and thread pools; batched-bench does a warm-up decode too.
    await runOnce(ctx, job.runs[0].prompts.slice(0, 1), 4, job.nBatch);
    for (const run of job.runs) results.push(await runOnce(ctx, run.prompts, job.genTokens, job.nBatch));
    return { threads: (await import("node:os")).availableParallelism(), results };
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

async function runOnce(ctx: NativeContext, prompts: number[][], genTokens: number, nBatch: number): Promise<NativeRunResult> {
  ctx.clear();
  prompts.forEach((_, seqId) => ctx.setSampler(seqId, GREEDY));
  const started = performance.now();
  const last = new Int32Array(prompts.length);
  let decodeNs = 0;
  let sampleNs = 0;
  const note = (r: StepResult) => {
    decodeNs += r.decodeNs;
    sampleNs += r.sampleNs;
  };
  // Prefill: every prompt token, in n_batch chunks; the last token of each prompt is sampled.
  const flat = prompts.flatMap((p, seqId) => p.map((token, pos) => ({ token, pos, seqId, sample: pos === p.length - 1 })));
  for (let i = 0; i < flat.length; i += nBatch) {
    const chunk = flat.slice(i, i + nBatch);
    const result = await ctx.step({
      tokens: Int32Array.from(chunk, (e) => e.token),
      positions: Int32Array.from(chunk, (e) => e.pos),
      seqIds: Int32Array.from(chunk, (e) => e.seqId),
      sample: Uint8Array.from(chunk, (e) => (e.sample ? 1 : 0)),
    });
    if (result.status !== "ok") throw new Error(`prefill step: ${result.status}`);
    note(result);
    result.sampledSeqIds.forEach((seqId, r) => (last[seqId] = result.sampledTokens[r]));
  }
  const prefilled = performance.now();
  // Decode: one token per sequence per step, each sampled.
  const n = prompts.length;
  const seqIds = Int32Array.from(prompts, (_, i) => i);
  const sample = new Uint8Array(n).fill(1);
  for (let step = 0; step < genTokens; step++) {
    const positions = Int32Array.from(prompts, (p) => p.length + step);
    const result = await ctx.step({ tokens: last.slice(), positions, seqIds, sample });
    if (result.status !== "ok") throw new Error(`decode step: ${result.status}`);
    note(result);
    result.sampledSeqIds.forEach((seqId, r) => (last[seqId] = result.sampledTokens[r]));
  }
  const ended = performance.now();
  prompts.forEach((_, seqId) => ctx.clearSampler(seqId));
  const tokens = prompts.reduce((s, p) => s + p.length, 0) + n * genTokens;
  return {
    parallel: n, tokens, prefillMs: prefilled - started, decodeMs: ended - prefilled,
    tokensPerSecond: tokens / ((ended - started) / 1000),
    nativeDecodeMs: decodeNs / 1e6,
    nativeSampleMs: sampleNs / 1e6,
  };
}
