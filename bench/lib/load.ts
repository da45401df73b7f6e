// The shape of one measured burst, shared by every system under test: N prompts sent at once,
// each generating `maxTokens` tokens, and what came back.
import { percentile } from "./stats.js";

export interface BenchPrompt {
  /** Text that vllama tokenizes (raw, with BOS) to exactly `tokens`. */
  text: string;
  /** Token ids, BOS first: what the llama.cpp peers are sent (none for an image request, whose tokens each server counts itself). */
  tokens: number[];
  /** An encoded image, base64, the request carries with `text` as its question (the images suite). */
  image?: string;
}

export interface BurstSpec {
  prompts: BenchPrompt[];
  maxTokens: number;
}

export interface RequestResult {
  /** Send to first streamed chunk, ms. */
  ttftMs: number;
  promptTokens: number;
  generatedTokens: number;
}

export interface BurstResult {
  wallMs: number;
  requests: RequestResult[];
}

export interface BurstSummary {
  /** (prompt + generated tokens) / wall time. */
  tokensPerSecond: number;
  ttftP50Ms: number;
  ttftP90Ms: number;
  wallMs: number;
  /** Requests that generated fewer tokens than asked (stopped early, e.g. at EOS). */
  shortRequests: number;
}

export function summarize(spec: BurstSpec, result: BurstResult): BurstSummary {
  const promptTokens = spec.prompts.reduce((n, p) => n + p.tokens.length, 0);
  const generated = result.requests.reduce((n, r) => n + r.generatedTokens, 0);
  const ttft = result.requests.map((r) => r.ttftMs);
  return {
    tokensPerSecond: (promptTokens + generated) / (result.wallMs / 1000),
    ttftP50Ms: percentile(ttft, 0.5),
    ttftP90Ms: percentile(ttft, 0.9),
    wallMs: result.wallMs,
    shortRequests: result.requests.filter((r) => r.generatedTokens < spec.maxTokens).length,
  };
}

/** Best of several rounds (highest throughput): on a shared machine the others are noise. */
export function best(summaries: BurstSummary[]): BurstSummary {
  return summaries.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
}

/** Runs one request per prompt, all at once, and times the whole burst. */
export async function burst(spec: BurstSpec, one: (prompt: BenchPrompt) => Promise<RequestResult>): Promise<BurstResult> {
  const started = performance.now();
  const requests = await Promise.all(spec.prompts.map(one));
  return { wallMs: performance.now() - started, requests };
}
