// Embedding texts with a loaded model: each input tokenized within what the model embeds at once
// (cut to fit, or refused with `truncate: false`), all embedded together.
import { BadRequestError } from "../api/errors.js";
import { tokenizeText } from "../native/index.js";
import type { ModelRunner } from "./model-runner.js";

export interface Embedded {
  vectors: Float32Array[];
  /** Tokens of all inputs together, Ollama's `prompt_eval_count`. */
  promptTokens: number;
}

export async function embedTexts(runner: ModelRunner, inputs: string[], truncate: boolean, signal?: AbortSignal): Promise<Embedded> {
  if (inputs.length === 0) throw new BadRequestError("input is required");
  const limit = Math.min(runner.model.info.contextLengthTrained || Infinity, runner.embedMaxTokens);
  const tokenized = await Promise.all(inputs.map(async (text, i) => {
    const tokens = [...(await tokenizeText(runner.model, text, true, false))];
    if (tokens.length === 0) throw new BadRequestError(`input[${i}] is empty`);
    if (tokens.length <= limit) return tokens;
    if (!truncate) throw new BadRequestError(`input[${i}] is ${tokens.length} tokens, longer than the context length (${limit})`);
    return tokens.slice(0, limit);
  }));
  const vectors = await runner.embed(tokenized, signal);
  return { vectors, promptTokens: tokenized.reduce((n, t) => n + t.length, 0) };
}

/** The vector scaled to length 1, as /api/embed returns it. */
export function normalize(v: Float32Array): number[] {
  let sum = 0;
  for (const x of v) sum += x * x;
  const norm = Math.sqrt(sum) || 1;
  return Array.from(v, (x) => x / norm);
}
