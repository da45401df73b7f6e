// Every request and response shape of the Ollama and OpenAI APIs, as zod schemas with their
// TypeScript types inferred. Shared by the HTTP server, the CLI and in-process callers, so a
// request is validated once, at the edge, with the same rules everywhere.
import { z } from "zod";
import { BadRequestError } from "./errors.js";

// ---------------------------------------------------------------------------------------------
// Validation entry point

const REQUIRED = "required";

/** Field-naming messages ("invalid options.temperature: expected number"), in Ollama's style. */
function issueText(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case "invalid_union":
      return issue.input === undefined ? REQUIRED : "unexpected type";
    case "invalid_type":
      if (issue.input === undefined) return REQUIRED;
      return `expected ${issue.expected === "int" ? "integer" : issue.expected}`;
    case "too_big":
      return issue.origin === "array" || issue.origin === "string"
        ? `must have at most ${issue.maximum} ${issue.origin === "array" ? "items" : "characters"}`
        : `must be ${issue.inclusive ? "<=" : "<"} ${issue.maximum}`;
    case "too_small":
      if (issue.minimum === 1 && (issue.origin === "array" || issue.origin === "string")) return "must not be empty";
      return issue.origin === "array" || issue.origin === "string"
        ? `must have at least ${issue.minimum} ${issue.origin === "array" ? "items" : "characters"}`
        : `must be ${issue.inclusive ? ">=" : ">"} ${issue.minimum}`;
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    default:
      return undefined; // schema-specific messages (custom, union) or zod's own text
  }
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join(".");
  if (path === "") return issue.code === "invalid_type" ? "invalid request body: expected a JSON object" : issue.message;
  if (issue.message === REQUIRED) return `${path} is required`;
  return `invalid ${path}: ${issue.message}`;
}

/** Validates a request body; throws a BadRequestError naming the first offending field. */
export function parseRequest<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (body === undefined) throw new BadRequestError("missing request body");
  const result = schema.safeParse(body, { error: issueText });
  if (!result.success) throw new BadRequestError(formatIssue(result.error.issues[0]!));
  return result.data;
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

const ModelName = z.string().min(1, { error: REQUIRED });
const Base64 = z.string();
const TokenIds = z.array(z.int());
/** Ollama accepts `name` as the older spelling of `model` on these endpoints (the JS client sends it). */
function withNameAlias<T extends z.ZodRawShape>(shape: T) {
  return z.preprocess((value) => {
    if (value !== null && typeof value === "object" && !("model" in value) && "name" in value) {
      return { ...value, model: (value as { name: unknown }).name };
    }
    return value;
  }, z.object(shape));
}

/** Go's time.ParseDuration grammar: "300ms", "-1.5h", "1h30m", "0". */
const GO_DURATION = /^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$/;
const DURATION_UNIT_MS: Record<string, number> = {
  ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000,
};

function goDurationMs(text: string): number | undefined {
  if (text === "0" || text === "+0" || text === "-0") return 0;
  // A bare number is seconds, as OLLAMA_KEEP_ALIVE reads it.
  if (/^[-+]?\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  if (!GO_DURATION.test(text)) return undefined;
  const sign = text.startsWith("-") ? -1 : 1;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g)) {
    ms += Number(amount) * DURATION_UNIT_MS[unit!]!;
  }
  return sign * ms;
}

const KEEP_ALIVE_EXPECTED = 'expected seconds or a duration such as "5m", "1h30m", "-1"';
const KeepAliveField = z
  .union([z.number(), z.string()], { error: KEEP_ALIVE_EXPECTED })
  .refine((v) => typeof v === "number" || goDurationMs(v) !== undefined, { error: KEEP_ALIVE_EXPECTED });
export type KeepAlive = z.infer<typeof KeepAliveField>;

/**
 * keep_alive in milliseconds: a number is seconds, a string a Go duration; negative means
 * forever (Infinity), 0 unloads at once, absent takes the server default.
 */
export function parseKeepAlive(value: KeepAlive | undefined, defaultMs: number): number {
  if (value === undefined) return defaultMs;
  const ms = typeof value === "number" ? value * 1000 : goDurationMs(value);
  if (ms === undefined) throw new BadRequestError(`invalid keep_alive: ${JSON.stringify(value)}`);
  return ms < 0 ? Infinity : ms;
}

/** "json", or a JSON Schema object; null and "" mean unset, as in Ollama. */
const FormatField = z
  .union([z.literal("json"), z.literal(""), z.null(), z.record(z.string(), z.unknown())], {
    error: 'expected "json" or a JSON Schema object',
  })
  .transform((v) => (v === "" || v === null ? undefined : v));
export type Format = "json" | Record<string, unknown>;

const Think = z.union([z.boolean(), z.enum(["low", "medium", "high"])], {
  error: 'expected a boolean or "low", "medium", "high"',
});
const TopLogprobs = z.int().min(0).max(20);
const Stop = z.union([z.string(), z.array(z.string())]).transform((v) => (typeof v === "string" ? [v] : v));

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
});

/** Changing any of these needs the model (or its context) loaded again. */
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

export const DEFAULT_NUM_CTX = 4096;

/** Every option with a value; `num_gpu` -1, `num_thread` 0 and absent `use_mmap` mean "decide". */
export type ResolvedOptions = Required<Omit<Options, "use_mmap">> & { use_mmap?: boolean };

/** Ollama's defaults (api.DefaultOptions), except num_ctx, which the server configures. */
const OLLAMA_DEFAULTS: Omit<ResolvedOptions, "num_ctx"> = {
  num_keep: 4,
  seed: -1,
  num_predict: -1,
  top_k: 40,
  top_p: 0.9,
  min_p: 0,
  typical_p: 1,
  repeat_last_n: 64,
  temperature: 0.8,
  repeat_penalty: 1.0,
  presence_penalty: 0,
  frequency_penalty: 0,
  stop: [],
  ignore_eos: false,
  num_batch: 512,
  num_gpu: -1,
  main_gpu: 0,
  num_thread: 0,
};

function definedEntries(options: Partial<Options> | undefined): Partial<Options> {
  return Object.fromEntries(Object.entries(options ?? {}).filter(([, v]) => v !== undefined));
}

/**
 * The one place defaults live: request options over the model's Modelfile parameters over
 * Ollama's defaults (num_ctx from the server configuration).
 */
export function resolveOptions(
  requestOptions: Partial<Options> | undefined,
  modelParameters: Partial<Options> | undefined,
  defaultNumCtx: number = DEFAULT_NUM_CTX,
): ResolvedOptions {
  return {
    ...OLLAMA_DEFAULTS,
    num_ctx: defaultNumCtx,
    ...definedEntries(modelParameters),
    ...definedEntries(requestOptions),
  };
}

// ---------------------------------------------------------------------------------------------
// Ollama: generation

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

export const GenerateRequestSchema = z
  .object({
    model: ModelName,
    prompt: z.string().optional(),
    suffix: z.string().optional(),
    system: z.string().optional(),
    template: z.string().optional(),
    images: z.array(Base64).optional(),
    format: FormatField.optional(),
    options: OptionsSchema.optional(),
    stream: z.boolean().optional(),
    raw: z.boolean().optional(),
    keep_alive: KeepAliveField.optional(),
    context: TokenIds.optional(),
    think: Think.optional(),
    truncate: z.boolean().optional(),
    shift: z.boolean().optional(),
    logprobs: z.boolean().optional(),
    top_logprobs: TopLogprobs.optional(),
  })
  .refine((r) => !r.raw || (r.template === undefined && r.system === undefined && r.context === undefined), {
    error: "raw mode does not support template, system, or context",
  });
export type GenerateRequest = z.infer<typeof GenerateRequestSchema>;

/** Metrics on the final chunk: durations in nanoseconds. */
const GenerationMetrics = {
  total_duration: z.int().optional(),
  load_duration: z.int().optional(),
  prompt_eval_count: z.int().optional(),
  prompt_eval_duration: z.int().optional(),
  eval_count: z.int().optional(),
  eval_duration: z.int().optional(),
};
const DoneReason = z.enum(["stop", "length", "load", "unload"]);
export type DoneReason = z.infer<typeof DoneReason>;

export const GenerateResponseSchema = z.object({
  model: z.string(),
  created_at: z.string(),
  response: z.string(),
  thinking: z.string().optional(),
  done: z.boolean(),
  done_reason: DoneReason.optional(),
  context: TokenIds.optional(),
  logprobs: z.array(LogprobSchema).optional(),
  ...GenerationMetrics,
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

export const ToolSchema = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string().min(1),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type Tool = z.infer<typeof ToolSchema>;

export const ChatMessageSchema = z.object({
  role: z.enum(["system", "user", "assistant", "tool"]),
  content: z.string().default(""),
  thinking: z.string().optional(),
  images: z.array(Base64).optional(),
  tool_calls: z.array(ToolCallSchema).optional(),
  tool_name: z.string().optional(),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

export const ChatRequestSchema = z.object({
  model: ModelName,
  messages: z.array(ChatMessageSchema).default([]),
  tools: z.array(ToolSchema).optional(),
  format: FormatField.optional(),
  options: OptionsSchema.optional(),
  stream: z.boolean().optional(),
  keep_alive: KeepAliveField.optional(),
  think: Think.optional(),
  truncate: z.boolean().optional(),
  shift: z.boolean().optional(),
  logprobs: z.boolean().optional(),
  top_logprobs: TopLogprobs.optional(),
});
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

export const ChatResponseSchema = z.object({
  model: z.string(),
  created_at: z.string(),
  message: z.object({
    role: z.literal("assistant"),
    content: z.string(),
    thinking: z.string().optional(),
    tool_calls: z.array(ToolCallSchema).optional(),
  }),
  done: z.boolean(),
  done_reason: DoneReason.optional(),
  logprobs: z.array(LogprobSchema).optional(),
  ...GenerationMetrics,
});
export type ChatResponse = z.infer<typeof ChatResponseSchema>;

// ---------------------------------------------------------------------------------------------
// Ollama: embeddings and tokens

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
// Ollama: model management

export const ModelDetailsSchema = z.object({
  parent_model: z.string(),
  format: z.string(),
  family: z.string(),
  families: z.array(z.string()).nullable(),
  parameter_size: z.string(),
  quantization_level: z.string(),
});
export type ModelDetails = z.infer<typeof ModelDetailsSchema>;

export const ListModelSchema = z.object({
  name: z.string(),
  model: z.string(),
  modified_at: z.string(),
  size: z.int(),
  digest: z.string(),
  details: ModelDetailsSchema,
});
export const TagsResponseSchema = z.object({ models: z.array(ListModelSchema) });
export type ListModel = z.infer<typeof ListModelSchema>;
export type TagsResponse = z.infer<typeof TagsResponseSchema>;

export const ProcessModelSchema = z.object({
  name: z.string(),
  model: z.string(),
  size: z.int(),
  digest: z.string(),
  details: ModelDetailsSchema,
  expires_at: z.string(),
  size_vram: z.int(),
  context_length: z.int(),
});
export const PsResponseSchema = z.object({ models: z.array(ProcessModelSchema) });
export type ProcessModel = z.infer<typeof ProcessModelSchema>;
export type PsResponse = z.infer<typeof PsResponseSchema>;

export const ShowRequestSchema = withNameAlias({
  model: ModelName,
  verbose: z.boolean().optional(),
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

export const VersionResponseSchema = z.object({ version: z.string() });
export type VersionResponse = z.infer<typeof VersionResponseSchema>;

export const BlobDigestSchema = BlobDigest;

export const ErrorResponseSchema = z.object({ error: z.string() });
export type ErrorResponse = z.infer<typeof ErrorResponseSchema>;

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible API

const OpenAIContentPart = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text"), text: z.string() }),
  z.object({
    type: z.literal("image_url"),
    image_url: z.union([z.string(), z.object({ url: z.string(), detail: z.string().optional() })]),
  }),
]);
export type OpenAIContentPart = z.infer<typeof OpenAIContentPart>;

export const OpenAIToolCallSchema = z.object({
  id: z.string().optional(),
  type: z.literal("function").default("function"),
  function: z.object({ name: z.string(), arguments: z.string() }),
});
export type OpenAIToolCall = z.infer<typeof OpenAIToolCallSchema>;

export const OpenAIChatMessageSchema = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: z.union([z.string(), z.array(OpenAIContentPart), z.null()]).optional(),
  name: z.string().optional(),
  reasoning: z.string().optional(),
  tool_calls: z.array(OpenAIToolCallSchema).optional(),
  tool_call_id: z.string().optional(),
});
export type OpenAIChatMessage = z.infer<typeof OpenAIChatMessageSchema>;

const OpenAIResponseFormat = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text") }),
  z.object({ type: z.literal("json_object") }),
  z.object({
    type: z.literal("json_schema"),
    json_schema: z.object({
      name: z.string().optional(),
      schema: z.record(z.string(), z.unknown()),
      strict: z.boolean().nullable().optional(),
    }),
  }),
]);

/** Sampling fields shared by chat and legacy completions. */
const OpenAISampling = {
  model: ModelName,
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  max_tokens: z.int().min(1).nullable().optional(),
  seed: z.int().nullable().optional(),
  stop: Stop.nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  n: z.int().min(1).max(1, { error: "only n=1 is supported" }).nullable().optional(),
  user: z.string().optional(),
};

export const ChatCompletionRequestSchema = z.object({
  ...OpenAISampling,
  messages: z.array(OpenAIChatMessageSchema).min(1),
  max_completion_tokens: z.int().min(1).nullable().optional(),
  response_format: OpenAIResponseFormat.nullable().optional(),
  tools: z.array(ToolSchema).nullable().optional(),
  tool_choice: z
    .union([z.enum(["none", "auto", "required"]), z.object({ type: z.literal("function") }).loose()])
    .nullable()
    .optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: TopLogprobs.nullable().optional(),
  reasoning_effort: z.enum(["low", "medium", "high"]).nullable().optional(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;

export const CompletionRequestSchema = z.object({
  ...OpenAISampling,
  prompt: z.union([z.string(), z.array(z.string()).length(1)]).transform((p) => (typeof p === "string" ? p : p[0]!)),
  suffix: z.string().nullable().optional(),
  echo: z.boolean().nullable().optional(),
  logprobs: z.int().min(0).max(20).nullable().optional(),
});
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

export const OpenAIEmbeddingRequestSchema = z.object({
  model: ModelName,
  input: z.union([z.string(), z.array(z.string()).min(1)]),
  dimensions: z.int().min(1).optional(),
  encoding_format: z.enum(["float", "base64"]).optional(),
  user: z.string().optional(),
});
export type OpenAIEmbeddingRequest = z.infer<typeof OpenAIEmbeddingRequestSchema>;

export const OpenAIUsageSchema = z.object({
  prompt_tokens: z.int(),
  completion_tokens: z.int(),
  total_tokens: z.int(),
});
export type OpenAIUsage = z.infer<typeof OpenAIUsageSchema>;

export const FinishReasonSchema = z.enum(["stop", "length", "tool_calls"]);
export type FinishReason = z.infer<typeof FinishReasonSchema>;

const OpenAITopLogprob = z.object({
  token: z.string(),
  logprob: z.number(),
  bytes: z.array(z.int()).nullable(),
});
export const OpenAILogprobsSchema = z.object({
  content: z.array(OpenAITopLogprob.extend({ top_logprobs: z.array(OpenAITopLogprob) })),
});
export type OpenAILogprobs = z.infer<typeof OpenAILogprobsSchema>;

export const ChatCompletionSchema = z.object({
  id: z.string(),
  object: z.literal("chat.completion"),
  created: z.int(),
  model: z.string(),
  system_fingerprint: z.string(),
  choices: z.array(
    z.object({
      index: z.int(),
      message: z.object({
        role: z.literal("assistant"),
        content: z.string().nullable(),
        reasoning: z.string().optional(),
        tool_calls: z.array(OpenAIToolCallSchema.required({ id: true })).optional(),
      }),
      finish_reason: FinishReasonSchema,
      logprobs: OpenAILogprobsSchema.nullable(),
    }),
  ),
  usage: OpenAIUsageSchema,
});
export type ChatCompletion = z.infer<typeof ChatCompletionSchema>;

export const ChatCompletionChunkSchema = z.object({
  id: z.string(),
  object: z.literal("chat.completion.chunk"),
  created: z.int(),
  model: z.string(),
  system_fingerprint: z.string(),
  choices: z.array(
    z.object({
      index: z.int(),
      delta: z.object({
        role: z.literal("assistant").optional(),
        content: z.string().optional(),
        reasoning: z.string().optional(),
        tool_calls: z
          .array(OpenAIToolCallSchema.required({ id: true }).extend({ index: z.int() }))
          .optional(),
      }),
      finish_reason: FinishReasonSchema.nullable(),
      logprobs: OpenAILogprobsSchema.nullable().optional(),
    }),
  ),
  usage: OpenAIUsageSchema.nullable().optional(),
});
export type ChatCompletionChunk = z.infer<typeof ChatCompletionChunkSchema>;

export const CompletionLogprobsSchema = z.object({
  tokens: z.array(z.string()),
  token_logprobs: z.array(z.number()),
  top_logprobs: z.array(z.record(z.string(), z.number())),
  text_offset: z.array(z.int()),
});
export type CompletionLogprobs = z.infer<typeof CompletionLogprobsSchema>;

/** Both the response and each streamed chunk of /v1/completions. */
export const CompletionSchema = z.object({
  id: z.string(),
  object: z.literal("text_completion"),
  created: z.int(),
  model: z.string(),
  system_fingerprint: z.string(),
  choices: z.array(
    z.object({
      index: z.int(),
      text: z.string(),
      finish_reason: FinishReasonSchema.nullable(),
      logprobs: CompletionLogprobsSchema.nullable(),
    }),
  ),
  usage: OpenAIUsageSchema.nullable().optional(),
});
export type Completion = z.infer<typeof CompletionSchema>;

export const OpenAIModelSchema = z.object({
  id: z.string(),
  object: z.literal("model"),
  created: z.int(),
  owned_by: z.string(),
});
export const OpenAIModelListSchema = z.object({ object: z.literal("list"), data: z.array(OpenAIModelSchema) });
export type OpenAIModel = z.infer<typeof OpenAIModelSchema>;
export type OpenAIModelList = z.infer<typeof OpenAIModelListSchema>;

export const OpenAIEmbeddingResponseSchema = z.object({
  object: z.literal("list"),
  data: z.array(
    z.object({
      object: z.literal("embedding"),
      embedding: z.union([z.array(z.number()), z.string()]),
      index: z.int(),
    }),
  ),
  model: z.string(),
  usage: z.object({ prompt_tokens: z.int(), total_tokens: z.int() }),
});
export type OpenAIEmbeddingResponse = z.infer<typeof OpenAIEmbeddingResponseSchema>;

export const OpenAIErrorTypeSchema = z.enum(["invalid_request_error", "not_found_error", "api_error"]);
export const OpenAIErrorResponseSchema = z.object({
  error: z.object({
    message: z.string(),
    type: OpenAIErrorTypeSchema,
    param: z.string().nullable(),
    code: z.string().nullable(),
  }),
});
export type OpenAIErrorResponse = z.infer<typeof OpenAIErrorResponseSchema>;
