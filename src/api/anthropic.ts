// Anthropic's Messages API (`/v1/messages`), the subset a local model can serve: request and
// response shapes as zod schemas with their types inferred, field by field as
// @anthropic-ai/sdk's type definitions describe them. Unknown request fields (cache_control,
// container, service_tier, ...) are dropped; content blocks and tools a local model cannot
// serve (documents, server tools) are refused by name.
import { z } from "zod";
import { ModelName } from "./shared-fields.js";
import { orRequired } from "./validate.js";

/** A string or an array of blocks, read as the array (a string is one text block). */
function blocksOrText<T extends z.ZodType>(block: T) {
  return z.preprocess(
    (value) => (typeof value === "string" ? [{ type: "text", text: value }] : value),
    z.array(block, { error: orRequired("expected a string or an array of content blocks") }),
  );
}

function blockUnion<const T extends readonly [z.ZodObject<{ type: z.ZodLiteral<string> }>, ...z.ZodObject<{ type: z.ZodLiteral<string> }>[]]>(
  blocks: T,
) {
  const types = blocks.map((b) => JSON.stringify(b.shape.type.value)).join(", ");
  return z.discriminatedUnion("type", blocks, { error: `expected a content block of type ${types}` });
}

// ---------------------------------------------------------------------------------------------
// Request

export const TextBlockParamSchema = z.object({ type: z.literal("text"), text: z.string() });

const ImageBlockParamSchema = z.object({
  type: z.literal("image"),
  source: z.discriminatedUnion(
    "type",
    [
      z.object({ type: z.literal("base64"), media_type: z.string(), data: z.string() }),
      z.object({ type: z.literal("url"), url: z.string() }),
    ],
    { error: 'expected an image source of type "base64" or "url"' },
  ),
});

const ToolUseBlockParamSchema = z.object({
  type: z.literal("tool_use"),
  id: z.string().min(1),
  name: z.string().min(1),
  input: z.record(z.string(), z.unknown()),
});

const ToolResultBlockParamSchema = z.object({
  type: z.literal("tool_result"),
  tool_use_id: z.string().min(1),
  content: blocksOrText(blockUnion([TextBlockParamSchema, ImageBlockParamSchema])).optional(),
  is_error: z.boolean().optional(),
});

const ThinkingBlockParamSchema = z.object({ type: z.literal("thinking"), thinking: z.string(), signature: z.string().optional() });
const RedactedThinkingBlockParamSchema = z.object({ type: z.literal("redacted_thinking"), data: z.string() });

export const ContentBlockParamSchema = blockUnion([
  TextBlockParamSchema,
  ImageBlockParamSchema,
  ToolUseBlockParamSchema,
  ToolResultBlockParamSchema,
  ThinkingBlockParamSchema,
  RedactedThinkingBlockParamSchema,
]);
export type ContentBlockParam = z.infer<typeof ContentBlockParamSchema>;

export const MessageParamSchema = z.object({
  role: z.enum(["user", "assistant", "system"]),
  content: blocksOrText(ContentBlockParamSchema),
});
export type MessageParam = z.infer<typeof MessageParamSchema>;

/** Custom (client) tools only: server tools (bash, web search, ...) run on Anthropic's side. */
export const ToolParamSchema = z.object({
  type: z.literal("custom", { error: 'only custom tools are supported (type "custom" or absent)' }).nullable().optional(),
  name: z.string().min(1),
  description: z.string().optional(),
  input_schema: z.record(z.string(), z.unknown()),
});
export type ToolParam = z.infer<typeof ToolParamSchema>;

export const ToolChoiceSchema = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.literal("auto"), disable_parallel_tool_use: z.boolean().optional() }),
    z.object({ type: z.literal("any"), disable_parallel_tool_use: z.boolean().optional() }),
    z.object({ type: z.literal("tool"), name: z.string().min(1), disable_parallel_tool_use: z.boolean().optional() }),
    z.object({ type: z.literal("none") }),
  ],
  { error: 'expected a tool_choice of type "auto", "any", "tool" or "none"' },
);
export type ToolChoice = z.infer<typeof ToolChoiceSchema>;

/** Anthropic's own rule: a thinking budget of at least 1,024 tokens. */
const MIN_THINKING_BUDGET = 1024;

export const ThinkingConfigSchema = z.discriminatedUnion(
  "type",
  [
    z.object({ type: z.literal("enabled"), budget_tokens: z.int().min(MIN_THINKING_BUDGET) }),
    z.object({ type: z.literal("disabled") }),
    z.object({ type: z.literal("adaptive") }),
  ],
  { error: 'expected a thinking config of type "enabled", "disabled" or "adaptive"' },
);
export type ThinkingConfig = z.infer<typeof ThinkingConfigSchema>;

const OutputConfigSchema = z.object({
  effort: z.enum(["low", "medium", "high", "xhigh", "max"]).nullable().optional(),
  format: z
    .object({ type: z.literal("json_schema"), schema: z.record(z.string(), z.unknown()) })
    .nullable()
    .optional(),
});

/** What count_tokens and create share: everything that makes the prompt. */
const PromptFields = {
  model: ModelName,
  messages: z.array(MessageParamSchema).min(1),
  system: blocksOrText(blockUnion([TextBlockParamSchema])).optional(),
  tools: z.array(ToolParamSchema).optional(),
  tool_choice: ToolChoiceSchema.optional(),
  thinking: ThinkingConfigSchema.optional(),
  output_config: OutputConfigSchema.optional(),
};

export const MessageCreateParamsSchema = z
  .object({
    ...PromptFields,
    max_tokens: z.int().min(1),
    stop_sequences: z.array(z.string()).optional(),
    stream: z.boolean().optional(),
    temperature: z.number().min(0).max(1).optional(),
    top_p: z.number().min(0).max(1).optional(),
    top_k: z.int().min(0).optional(),
    metadata: z.object({ user_id: z.string().nullable().optional() }).optional(),
  })
  .refine((r) => r.thinking?.type !== "enabled" || r.thinking.budget_tokens < r.max_tokens, {
    error: "`max_tokens` must be greater than `thinking.budget_tokens`",
  });
export type MessageCreateParams = z.infer<typeof MessageCreateParamsSchema>;

export const MessageCountTokensParamsSchema = z.object(PromptFields);
export type MessageCountTokensParams = z.infer<typeof MessageCountTokensParamsSchema>;

// ---------------------------------------------------------------------------------------------
// Response

export const TextBlockSchema = z.object({ type: z.literal("text"), text: z.string(), citations: z.null() });
export const ThinkingBlockSchema = z.object({ type: z.literal("thinking"), thinking: z.string(), signature: z.string() });
export const ToolUseBlockSchema = z.object({
  type: z.literal("tool_use"),
  id: z.string(),
  name: z.string(),
  input: z.record(z.string(), z.unknown()),
  /** Called by the model itself (not from Anthropic's code-execution sandbox). */
  caller: z.object({ type: z.literal("direct") }),
});
export const ContentBlockSchema = z.discriminatedUnion("type", [TextBlockSchema, ThinkingBlockSchema, ToolUseBlockSchema]);
export type TextBlock = z.infer<typeof TextBlockSchema>;
export type ThinkingBlock = z.infer<typeof ThinkingBlockSchema>;
export type ToolUseBlock = z.infer<typeof ToolUseBlockSchema>;
export type ContentBlock = z.infer<typeof ContentBlockSchema>;

export const StopReasonSchema = z.enum(["end_turn", "max_tokens", "stop_sequence", "tool_use"]);
export type StopReason = z.infer<typeof StopReasonSchema>;

/**
 * Every counter of Anthropic's usage object; what has no local meaning (server tools, geography,
 * speed tiers) is null. Cache counters are 0: prefix-cache hits are not reported per request.
 */
const UsageCounters = {
  input_tokens: z.int(),
  output_tokens: z.int(),
  cache_creation_input_tokens: z.int(),
  cache_read_input_tokens: z.int(),
  output_tokens_details: z.null(),
  server_tool_use: z.null(),
};
export const UsageSchema = z.object({
  ...UsageCounters,
  cache_creation: z.null(),
  inference_geo: z.null(),
  service_tier: z.literal("standard"),
  speed: z.null(),
});
export type Usage = z.infer<typeof UsageSchema>;
/** The usage of a stream's message_delta event: cumulative totals. */
export const MessageDeltaUsageSchema = z.object(UsageCounters);
export type MessageDeltaUsage = z.infer<typeof MessageDeltaUsageSchema>;

/** Why generation ended, as message_delta and the whole message report it. */
const StopFields = {
  stop_reason: StopReasonSchema,
  stop_sequence: z.string().nullable(),
  stop_details: z.null(),
  container: z.null(),
};

export const MessageSchema = z.object({
  id: z.string(),
  type: z.literal("message"),
  role: z.literal("assistant"),
  model: z.string(),
  content: z.array(ContentBlockSchema),
  ...StopFields,
  /** null in message_start, which opens a stream before generation has ended. */
  stop_reason: StopReasonSchema.nullable(),
  diagnostics: z.null(),
  usage: UsageSchema,
});
export type Message = z.infer<typeof MessageSchema>;

export const MessageTokensCountSchema = z.object({ input_tokens: z.int() });
export type MessageTokensCount = z.infer<typeof MessageTokensCountSchema>;

// ---------------------------------------------------------------------------------------------
// Stream events

const ContentBlockDeltaSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text_delta"), text: z.string() }),
  z.object({ type: z.literal("thinking_delta"), thinking: z.string() }),
  z.object({ type: z.literal("input_json_delta"), partial_json: z.string() }),
]);

export const MessageStreamEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("message_start"), message: MessageSchema }),
  z.object({ type: z.literal("ping") }),
  z.object({ type: z.literal("content_block_start"), index: z.int(), content_block: ContentBlockSchema }),
  z.object({ type: z.literal("content_block_delta"), index: z.int(), delta: ContentBlockDeltaSchema }),
  z.object({ type: z.literal("content_block_stop"), index: z.int() }),
  z.object({ type: z.literal("message_delta"), delta: z.object(StopFields), usage: MessageDeltaUsageSchema }),
  z.object({ type: z.literal("message_stop") }),
]);
export type MessageStreamEvent = z.infer<typeof MessageStreamEventSchema>;

// ---------------------------------------------------------------------------------------------
// Errors

export const AnthropicErrorTypeSchema = z.enum([
  "invalid_request_error",
  "authentication_error",
  "permission_error",
  "not_found_error",
  "request_too_large",
  "rate_limit_error",
  "api_error",
  "overloaded_error",
]);
export type AnthropicErrorType = z.infer<typeof AnthropicErrorTypeSchema>;

export const AnthropicErrorResponseSchema = z.object({
  type: z.literal("error"),
  error: z.object({ type: AnthropicErrorTypeSchema, message: z.string() }),
});
export type AnthropicErrorResponse = z.infer<typeof AnthropicErrorResponseSchema>;
