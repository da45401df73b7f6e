// Ollama request options -> the native sampler's parameters and a sequence's limits.
import { BadRequestError } from "../api/errors.js";
import type { Format } from "../api/ollama.js";
import type { ResolvedOptions } from "./options.js";
import { jsonSchemaToGrammar, type SamplerParams } from "../native/index.js";
import type { SamplerGrammar } from "../chat/tool-call-grammar.js";
import { checkJsonSchema } from "./json-schema-check.js";
import type { SequenceLimits } from "./sequence.js";

export interface SamplingRequest {
  options: ResolvedOptions;
  /** GBNF from `formatGrammar(format)`, converted before the request takes a place, or the chat library's for the request's tools. */
  grammar?: SamplerGrammar;
  logprobs?: boolean;
  topLogprobs?: number;
  /** The model's vocabulary size: `logit_bias` may name only its tokens. */
  vocabSize: number;
}

export function samplerParams(req: SamplingRequest): SamplerParams {
  const o = req.options;
  return {
    temperature: o.temperature,
    topK: o.top_k,
    topP: o.top_p,
    minP: o.min_p,
    typicalP: o.typical_p,
    // Ollama: seed -1 means random; anything else reproduces the same text.
    seed: o.seed < 0 ? Math.floor(Math.random() * 2 ** 32) : o.seed >>> 0,
    repeatLastN: o.repeat_last_n,
    repeatPenalty: o.repeat_penalty,
    presencePenalty: o.presence_penalty,
    frequencyPenalty: o.frequency_penalty,
    logitBias: logitBias(o.logit_bias, req.vocabSize),
    ...req.grammar,
    logprobs: req.logprobs ?? false,
    topLogprobs: req.topLogprobs ?? 0,
    minTokens: o.min_tokens,
  };
}

function logitBias(biasByToken: Record<string, number>, vocabSize: number): Array<[number, number]> {
  return Object.entries(biasByToken).map(([key, bias]) => {
    const token = Number(key);
    if (token >= vocabSize) throw new BadRequestError(`invalid logit_bias: token ${key} is not in the model's vocabulary of ${vocabSize} tokens`);
    return [token, bias];
  });
}

export function sequenceLimits(options: ResolvedOptions): SequenceLimits {
  return { maxTokens: options.num_predict < 0 ? -1 : options.num_predict, maxContext: options.num_ctx, stop: options.stop, ignoreEos: options.ignore_eos };
}

/**
 * `format: "json"` is any JSON object; a JSON schema object constrains output to that schema.
 * The schema is bounded first, then converted off the JS thread (native/addon.cpp).
 */
export async function formatGrammar(format: Format | undefined): Promise<SamplerGrammar | undefined> {
  if (format === undefined) return undefined;
  if (format !== "json") checkJsonSchema(format, "format");
  const schema = format === "json" ? { type: "object" } : format;
  try {
    return { grammar: await jsonSchemaToGrammar(schema) };
  } catch (error) {
    throw new BadRequestError(`invalid format: ${(error as Error).message}`);
  }
}
