// OpenAI's API as vllama serves it (src/server/openai.ts translates to and from the engine's
// Ollama calls): request schemas validated at the edge by `parseRequest`, and response shapes as
// strict schemas that test/api-contract.test.ts holds the real server to.
import { z } from "zod";
import { RuntimeOptionsSchema } from "./ollama.js";
import { ChatToolChoiceSchema, ModelName, ReasoningEffortSchema, Stop, ToolSchema, TopLogprobs } from "./shared-fields.js";

// ---------------------------------------------------------------------------------------------
// Requests

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

/** Most choices one request may ask for (prompts x n): OpenAI's bound on n. */
export const MAX_CHOICES = 128;

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
  // vLLM's extra sampling fields: -1 turns top_k off, as 0 does for the engine.
  top_k: z.int().min(-1).nullable().optional(),
  min_p: z.number().min(0).max(1).nullable().optional(),
  repetition_penalty: z.number().gt(0).max(2).nullable().optional(),
  logit_bias: RuntimeOptionsSchema.shape.logit_bias.nullable(),
  min_tokens: z.int().min(0).nullable().optional(),
  // Choices per prompt; each is a sequence of its own (src/server/choices.ts), so they are bounded.
  n: z.int().min(1).max(MAX_CHOICES).nullable().optional(),
  best_of: z.int().min(1).max(1, { error: "only best_of=1 is supported" }).nullable().optional(),
  user: z.string().optional(),
};

export const ChatCompletionRequestSchema = z.object({
  ...OpenAISampling,
  messages: z.array(OpenAIChatMessageSchema).min(1),
  max_completion_tokens: z.int().min(1).nullable().optional(),
  response_format: OpenAIResponseFormat.nullable().optional(),
  tools: z.array(ToolSchema).nullable().optional(),
  tool_choice: ChatToolChoiceSchema.nullable().optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: TopLogprobs.nullable().optional(),
  reasoning_effort: ReasoningEffortSchema.nullable().optional(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequestSchema>;

export const CompletionRequestSchema = z.object({
  ...OpenAISampling,
  // A list of prompts is one choice each (times n), batched together.
  prompt: z.union([z.string(), z.array(z.string()).min(1).max(MAX_CHOICES)]).transform((p) => (typeof p === "string" ? [p] : p)),
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

// ---------------------------------------------------------------------------------------------
// Responses

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

/** What every completion object and chunk starts with. */
function completionHeader<O extends string>(object: O) {
  return { id: z.string(), object: z.literal(object), created: z.int(), model: z.string(), system_fingerprint: z.string() };
}

export const ChatCompletionSchema = z.object({
  ...completionHeader("chat.completion"),
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
  ...completionHeader("chat.completion.chunk"),
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
  ...completionHeader("text_completion"),
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
