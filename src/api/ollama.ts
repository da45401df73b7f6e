// Ollama's API: every request shape as a zod schema (validated at the edge by `parseRequest`),
// and every response shape as a strict schema that test/api-contract.test.ts holds the real
// server to. TypeScript types are inferred from both, so there is one declaration of each.
import { z } from "zod";
import { goDurationMs } from "../util/go-duration.js";
import { ChatToolChoiceSchema, ModelName, Stop, ThinkLevelSchema, ToolSchema, TopLogprobs } from "./shared-fields.js";

const Base64 = z.string();
/** Token ids travel to the native side as int32: a larger one wrapped (2147483648 became -2147483648). */
const TokenIds = z.array(z.int().min(0).max(2 ** 31 - 1));
/** Ollama accepts `name` as the older spelling of `model` on these endpoints (the JS client sends it). */
function withNameAlias<T extends z.ZodRawShape>(shape: T) {
  return z.preprocess((value) => {
    if (value !== null && typeof value === "object" && !("model" in value) && "name" in value) {
      return { ...value, model: (value as { name: unknown }).name };
    }
    return value;
  }, z.object(shape));
}

const KEEP_ALIVE_EXPECTED = 'expected seconds or a duration such as "5m", "1h30m", "-1"';
const KeepAliveField = z
  .union([z.number(), z.string()], { error: KEEP_ALIVE_EXPECTED })
  .refine((v) => typeof v === "number" || goDurationMs(v) !== undefined, { error: KEEP_ALIVE_EXPECTED });
/** Seconds, or a Go duration; src/engine/options.ts turns it into milliseconds. */
export type KeepAlive = z.infer<typeof KeepAliveField>;

/** "json", or a JSON Schema object; null and "" mean unset, as in Ollama. */
const FormatField = z
  .union([z.literal("json"), z.literal(""), z.null(), z.record(z.string(), z.unknown())], {
    error: 'expected "json" or a JSON Schema object',
  })
  .transform((v) => (v === "" || v === null ? undefined : v));
export type Format = "json" | Record<string, unknown>;

const Think = z.union([z.boolean(), ThinkLevelSchema], {
  error: 'expected a boolean or "low", "medium", "high", "max"',
});

// ---------------------------------------------------------------------------------------------
// Options: per-request sampling options and load-time options. Unknown keys are dropped (the
// server logs them), never rejected: clients send options from every Ollama version.

export const RuntimeOptionsSchema = z.object({
  num_keep: z.int().optional(),
  seed: z.int().optional(),
  num_predict: z.int().optional(),
  top_k: z.int().min(0).optional(),
  top_p: z.number().min(0).max(1).optional(),
  min_p: z.number().min(0).max(1).optional(),
  typical_p: z.number().min(0).max(1).optional(),
  repeat_last_n: z.int().min(-1).optional(),
  temperature: z.number().min(0).optional(),
  repeat_penalty: z.number().min(0).optional(),
  presence_penalty: z.number().optional(),
  frequency_penalty: z.number().optional(),
  stop: Stop.optional(),
  /** vllama extension (as in vLLM): keep generating past end-of-sequence tokens. */
  ignore_eos: z.boolean().optional(),
  /** vllama extension (as OpenAI's and vLLM's `min_tokens`): end-of-sequence tokens are held off until this many tokens. */
  min_tokens: z.int().min(0).optional(),
  /** vllama extension (OpenAI's `logit_bias`): token id -> bias added to its logit (-100 bans it). */
  logit_bias: z.record(z.string().regex(/^\d+$/, { error: "expected token ids as keys" }), z.number().min(-100).max(100)).optional(),
});

/**
 * Load settings: a model loaded with other ones is loaded again, as another entry; num_ctx only
 * when larger than the loaded model's context, and it also limits one sequence
 * (src/engine/options.ts, resolveLoadSettings; src/engine/model-pool.ts).
 */
export const LoadOptionsSchema = z.object({
  num_ctx: z.int().min(1).optional(),
  num_batch: z.int().min(1).optional(),
  num_gpu: z.int().min(-1).optional(),
  main_gpu: z.int().min(0).optional(),
  use_mmap: z.boolean().optional(),
  num_thread: z.int().min(0).optional(),
});

export const OptionsSchema = RuntimeOptionsSchema.extend(LoadOptionsSchema.shape);
export type Options = z.infer<typeof OptionsSchema>;
export type RuntimeOptions = z.infer<typeof RuntimeOptionsSchema>;
export type LoadOptions = z.infer<typeof LoadOptionsSchema>;

const KNOWN_OPTION_KEYS = new Set(Object.keys(OptionsSchema.shape));

/** Keys of a raw `options` object that vllama ignores, for a log line. */
export function unknownOptionKeys(rawOptions: unknown): string[] {
  if (rawOptions === null || typeof rawOptions !== "object") return [];
  return Object.keys(rawOptions).filter((key) => !KNOWN_OPTION_KEYS.has(key));
}

// ---------------------------------------------------------------------------------------------
// Generation

export const TokenLogprobSchema = z.object({
  token: z.string(),
  logprob: z.number(),
  bytes: z.array(z.int()).optional(),
});
export const LogprobSchema = TokenLogprobSchema.extend({
  top_logprobs: z.array(TokenLogprobSchema).optional(),
});
export type TokenLogprob = z.infer<typeof TokenLogprobSchema>;
export type Logprob = z.infer<typeof LogprobSchema>;

/** Request fields of both /api/generate and /api/chat. */
const GenerationRequestFields = {
  model: ModelName,
  format: FormatField.optional(),
  options: OptionsSchema.optional(),
  stream: z.boolean().optional(),
  keep_alive: KeepAliveField.optional(),
  think: Think.optional(),
  truncate: z.boolean().optional(),
  shift: z.boolean().optional(),
  logprobs: z.boolean().optional(),
  top_logprobs: TopLogprobs.optional(),
};

export const GenerateRequestSchema = z
  .object({
    ...GenerationRequestFields,
    prompt: z.string().optional(),
    suffix: z.string().optional(),
    system: z.string().optional(),
    template: z.string().optional(),
    images: z.array(Base64).optional(),
    raw: z.boolean().optional(),
    context: TokenIds.optional(),
  })
  .refine((r) => !r.raw || (r.template === undefined && r.system === undefined && r.context === undefined), {
    error: "raw mode does not support template, system, or context",
  });
export type GenerateRequest = z.infer<typeof GenerateRequestSchema>;

/** "load" and "unload" answer an empty prompt that only loads or unloads the model. */
export const DoneReasonSchema = z.enum(["stop", "length", "load", "unload"]);
export type DoneReason = z.infer<typeof DoneReasonSchema>;

/** Response fields of both /api/generate and /api/chat; metrics on the final chunk, durations in nanoseconds. */
const GenerationResponseFields = {
  model: z.string(),
  created_at: z.string(),
  done: z.boolean(),
  done_reason: DoneReasonSchema.optional(),
  /** vllama's addition to the final chunk: the `options.stop` string that ended the answer, when one did. */
  stop_sequence: z.string().optional(),
  logprobs: z.array(LogprobSchema).optional(),
  total_duration: z.int().optional(),
  load_duration: z.int().optional(),
  prompt_eval_count: z.int().optional(),
  prompt_eval_duration: z.int().optional(),
  eval_count: z.int().optional(),
  eval_duration: z.int().optional(),
};

export const GenerateResponseSchema = z.object({
  ...GenerationResponseFields,
  response: z.string(),
  thinking: z.string().optional(),
  context: TokenIds.optional(),
});
export type GenerateResponse = z.infer<typeof GenerateResponseSchema>;

export const ToolCallSchema = z.object({
  function: z.object({
    index: z.int().optional(),
    name: z.string(),
    arguments: z.record(z.string(), z.unknown()),
  }),
});
export type ToolCall = z.infer<typeof ToolCallSchema>;

export const ChatRoleSchema = z.enum(["system", "user", "assistant", "tool"]);
export type ChatRole = z.infer<typeof ChatRoleSchema>;

export const ChatMessageSchema = z.object({
  role: ChatRoleSchema,
  content: z.string().default(""),
  thinking: z.string().optional(),
  images: z.array(Base64).optional(),
  tool_calls: z.array(ToolCallSchema).optional(),
  tool_name: z.string().optional(),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

export const ChatRequestSchema = z.object({
  ...GenerationRequestFields,
  messages: z.array(ChatMessageSchema).default([]),
  tools: z.array(ToolSchema).optional(),
  /** vllama extension (OpenAI's spelling): "none", "auto", "required" or a named function. */
  tool_choice: ChatToolChoiceSchema.optional(),
  /** vllama extension (OpenAI's spelling): false allows at most one tool call. */
  parallel_tool_calls: z.boolean().optional(),
});
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

export const ChatResponseSchema = z.object({
  ...GenerationResponseFields,
  message: z.object({
    role: z.literal("assistant"),
    content: z.string(),
    thinking: z.string().optional(),
    tool_calls: z.array(ToolCallSchema).optional(),
  }),
});
export type ChatResponse = z.infer<typeof ChatResponseSchema>;

// ---------------------------------------------------------------------------------------------
// Embeddings and tokens

export const EmbedRequestSchema = z.object({
  model: ModelName,
  input: z.union([z.string(), z.array(z.string())]).optional(),
  truncate: z.boolean().optional(),
  dimensions: z.int().min(1).optional(),
  options: OptionsSchema.optional(),
  keep_alive: KeepAliveField.optional(),
});
export type EmbedRequest = z.infer<typeof EmbedRequestSchema>;

export const EmbedResponseSchema = z.object({
  model: z.string(),
  embeddings: z.array(z.array(z.number())),
  total_duration: z.int().optional(),
  load_duration: z.int().optional(),
  prompt_eval_count: z.int().optional(),
});
export type EmbedResponse = z.infer<typeof EmbedResponseSchema>;

/** Legacy endpoint: one prompt, vector not normalized. */
export const EmbeddingsRequestSchema = z.object({
  model: ModelName,
  prompt: z.string().optional(),
  options: OptionsSchema.optional(),
  keep_alive: KeepAliveField.optional(),
});
export type EmbeddingsRequest = z.infer<typeof EmbeddingsRequestSchema>;

export const EmbeddingsResponseSchema = z.object({ embedding: z.array(z.number()) });
export type EmbeddingsResponse = z.infer<typeof EmbeddingsResponseSchema>;

export const TokenizeRequestSchema = z.object({
  model: ModelName,
  content: z.string(),
  options: OptionsSchema.optional(),
  keep_alive: KeepAliveField.optional(),
});
export type TokenizeRequest = z.infer<typeof TokenizeRequestSchema>;
export const TokenizeResponseSchema = z.object({ tokens: TokenIds });
export type TokenizeResponse = z.infer<typeof TokenizeResponseSchema>;

export const DetokenizeRequestSchema = z.object({
  model: ModelName,
  tokens: TokenIds,
  options: OptionsSchema.optional(),
  keep_alive: KeepAliveField.optional(),
});
export type DetokenizeRequest = z.infer<typeof DetokenizeRequestSchema>;
export const DetokenizeResponseSchema = z.object({ content: z.string() });
export type DetokenizeResponse = z.infer<typeof DetokenizeResponseSchema>;

// ---------------------------------------------------------------------------------------------
// Model management

export const ModelDetailsSchema = z.object({
  parent_model: z.string(),
  format: z.string(),
  family: z.string(),
  families: z.array(z.string()).nullable(),
  parameter_size: z.string(),
  quantization_level: z.string(),
});
export type ModelDetails = z.infer<typeof ModelDetailsSchema>;

/** What /api/tags and /api/ps both say of a model; `digest` is the manifest's sha256 in hex. */
const ModelEntryFields = {
  name: z.string(),
  model: z.string(),
  size: z.int(),
  digest: z.string(),
  details: ModelDetailsSchema,
};

export const ListModelSchema = z.object({
  ...ModelEntryFields,
  modified_at: z.string(),
  /** vllama extension: why the model cannot be used (its manifest or config is damaged); it can still be deleted. */
  damaged: z.string().optional(),
});
export const TagsResponseSchema = z.object({ models: z.array(ListModelSchema) });
export type ListModel = z.infer<typeof ListModelSchema>;
export type TagsResponse = z.infer<typeof TagsResponseSchema>;

export const ProcessModelSchema = z.object({
  ...ModelEntryFields,
  expires_at: z.string(),
  size_vram: z.int(),
  context_length: z.int(),
  /** vllama extensions: the model's KV cache in cells and bytes, and its sequences at once. */
  kv_cells: z.int().optional(),
  kv_bytes: z.int().optional(),
  parallel: z.int().optional(),
  /** vllama extension (`serve --rpc`): what each RPC worker holds of the model, in bytes. */
  rpc_workers: z.array(z.object({
    endpoint: z.string(), model_bytes: z.int(), kv_bytes: z.int(), compute_bytes: z.int(),
  })).optional(),
});
export const PsResponseSchema = z.object({ models: z.array(ProcessModelSchema) });
export type ProcessModel = z.infer<typeof ProcessModelSchema>;
export type PsResponse = z.infer<typeof PsResponseSchema>;

export const ShowRequestSchema = withNameAlias({
  model: ModelName,
  verbose: z.boolean().optional(),
  /** vllama: hash every blob of the model first; a damaged one is a 500 naming it. */
  verify: z.boolean().optional(),
  system: z.string().optional(),
  template: z.string().optional(),
  options: OptionsSchema.optional(),
});
export type ShowRequest = z.infer<typeof ShowRequestSchema>;

export const CapabilitySchema = z.enum(["completion", "tools", "insert", "vision", "embedding", "thinking"]);
export type Capability = z.infer<typeof CapabilitySchema>;

export const ShowResponseSchema = z.object({
  modelfile: z.string(),
  parameters: z.string(),
  template: z.string(),
  system: z.string().optional(),
  license: z.string().optional(),
  messages: z.array(ChatMessageSchema).optional(),
  details: ModelDetailsSchema,
  model_info: z.record(z.string(), z.unknown()),
  projector_info: z.record(z.string(), z.unknown()).optional(),
  /** Only with `verbose`. */
  tensors: z.array(z.object({ name: z.string(), type: z.string(), shape: z.array(z.int()) })).optional(),
  capabilities: z.array(CapabilitySchema),
  modified_at: z.string(),
});
export type ShowResponse = z.infer<typeof ShowResponseSchema>;

export const PullRequestSchema = withNameAlias({
  model: ModelName,
  insecure: z.boolean().optional(),
  stream: z.boolean().optional(),
});
export type PullRequest = z.infer<typeof PullRequestSchema>;

export const PushRequestSchema = withNameAlias({
  model: ModelName,
  insecure: z.boolean().optional(),
  stream: z.boolean().optional(),
});
export type PushRequest = z.infer<typeof PushRequestSchema>;

const BlobDigest = z.string().regex(/^sha256[:-][0-9a-f]{64}$/, { error: 'expected "sha256:<64 hex digits>"' });

export const CreateRequestSchema = withNameAlias({
  model: ModelName,
  from: z.string().optional(),
  files: z.record(z.string(), BlobDigest).optional(),
  adapters: z.record(z.string(), BlobDigest).optional(),
  template: z.string().optional(),
  system: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  messages: z.array(ChatMessageSchema).optional(),
  license: z.union([z.string(), z.array(z.string())]).optional(),
  quantize: z.string().optional(),
  stream: z.boolean().optional(),
});
export type CreateRequest = z.infer<typeof CreateRequestSchema>;

export const CopyRequestSchema = z.object({ source: ModelName, destination: ModelName });
export type CopyRequest = z.infer<typeof CopyRequestSchema>;

export const DeleteRequestSchema = withNameAlias({ model: ModelName });
export type DeleteRequest = z.infer<typeof DeleteRequestSchema>;

export const ProgressResponseSchema = z.object({
  status: z.string(),
  digest: z.string().optional(),
  total: z.int().optional(),
  completed: z.int().optional(),
});
export type ProgressResponse = z.infer<typeof ProgressResponseSchema>;

/** `version` is the Ollama release whose API vllama speaks (clients gate features on it); `vllama_version` is vllama's own. */
export const VersionResponseSchema = z.object({ version: z.string(), vllama_version: z.string().optional() });
export type VersionResponse = z.infer<typeof VersionResponseSchema>;

export const BlobDigestSchema = BlobDigest;

export const ErrorResponseSchema = z.object({ error: z.string() });
export type ErrorResponse = z.infer<typeof ErrorResponseSchema>;

