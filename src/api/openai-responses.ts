// OpenAI's Responses API (`/v1/responses`), stateless as Ollama serves it: request and response
// shapes as zod schemas with their types inferred, field by field as the `openai` package's type
// definitions describe them. Unknown request fields (store, include, prompt_cache_key, ...) are
// dropped; input items and tools a local model cannot serve (file search, web search, computer
// use, item references) are refused by name.
import { z } from "zod";
import { ModelName } from "./shared-fields.js";
import { orRequired } from "./validate.js";

function itemUnion<const T extends readonly [z.ZodObject<{ type: z.ZodLiteral<string> }>, ...z.ZodObject<{ type: z.ZodLiteral<string> }>[]]>(
  what: string,
  items: T,
) {
  const types = items.map((b) => JSON.stringify(b.shape.type.value)).join(", ");
  return z.discriminatedUnion("type", items, { error: `expected ${what} of type ${types}` });
}

// ---------------------------------------------------------------------------------------------
// Request

const InputTextSchema = z.object({ type: z.literal("input_text"), text: z.string() });
/** Images are data URLs or http(s) URLs (fetched by the server: src/server/remote-images.ts); no stored files. */
const InputImageSchema = z.object({ type: z.literal("input_image"), image_url: z.string().nullable().optional(), detail: z.string().optional() });
/** An earlier answer's text, as clients send the previous output back. */
const OutputTextSchema = z.object({ type: z.literal("output_text"), text: z.string() });
const RefusalSchema = z.object({ type: z.literal("refusal"), refusal: z.string() });

const ContentPartSchema = itemUnion("a content part", [InputTextSchema, InputImageSchema, OutputTextSchema, RefusalSchema]);
export type ContentPart = z.infer<typeof ContentPartSchema>;

/** A string or an array of parts, read as the array (a string is one text part). */
const PartsOrText = z.preprocess(
  (value) => (typeof value === "string" ? [{ type: "input_text", text: value }] : value),
  z.array(ContentPartSchema, { error: orRequired("expected a string or an array of content parts") }),
);

const MessageItemSchema = z.object({
  type: z.literal("message"),
  role: z.enum(["user", "assistant", "system", "developer"]),
  content: PartsOrText,
});

const FunctionCallItemSchema = z.object({
  type: z.literal("function_call"),
  call_id: z.string().min(1),
  name: z.string().min(1),
  arguments: z.string(),
});

const FunctionCallOutputItemSchema = z.object({
  type: z.literal("function_call_output"),
  call_id: z.string().min(1),
  output: PartsOrText,
});

const ReasoningItemSchema = z.object({
  type: z.literal("reasoning"),
  summary: z.array(z.object({ type: z.literal("summary_text"), text: z.string() })).default([]),
  content: z.array(z.object({ type: z.literal("reasoning_text"), text: z.string() })).nullable().optional(),
});

/** An item without a `type` but with a `role` is a message (the SDK's EasyInputMessage). */
export const InputItemSchema = z.preprocess(
  (value) => (value !== null && typeof value === "object" && !("type" in value) && "role" in value ? { ...value, type: "message" } : value),
  itemUnion("an input item", [MessageItemSchema, FunctionCallItemSchema, FunctionCallOutputItemSchema, ReasoningItemSchema]),
);
export type InputItem = z.infer<typeof InputItemSchema>;

export const FunctionToolSchema = z.object({
  type: z.literal("function", { error: 'only function tools are supported (type "function")' }),
  name: z.string().min(1),
  description: z.string().nullable().optional(),
  parameters: z.record(z.string(), z.unknown()).nullable().optional(),
  strict: z.boolean().nullable().optional(),
});
export type FunctionTool = z.infer<typeof FunctionToolSchema>;

export const ToolChoiceSchema = z.union(
  [z.enum(["none", "auto", "required"]), z.object({ type: z.literal("function"), name: z.string().min(1) })],
  { error: 'expected "none", "auto", "required" or {"type": "function", "name": ...}' },
);
export type ToolChoice = z.infer<typeof ToolChoiceSchema>;

export const TextFormatSchema = itemUnion("a text format", [
  z.object({ type: z.literal("text") }),
  z.object({ type: z.literal("json_object") }),
  z.object({
    type: z.literal("json_schema"),
    name: z.string().min(1),
    schema: z.record(z.string(), z.unknown()),
    description: z.string().optional(),
    strict: z.boolean().nullable().optional(),
  }),
]);
export type TextFormat = z.infer<typeof TextFormatSchema>;

export const ReasoningEffortSchema = z.enum(["none", "minimal", "low", "medium", "high", "xhigh"]);
export type ReasoningEffort = z.infer<typeof ReasoningEffortSchema>;

const NOT_STORED = "vllama does not store responses or conversations: send the whole conversation in `input`";

export const ResponseCreateParamsSchema = z.object({
  model: ModelName,
  /** A string is one user message. */
  input: z.preprocess(
    (value) => (typeof value === "string" ? [{ role: "user", content: value }] : value),
    z.array(InputItemSchema, { error: orRequired("expected a string or an array of input items") }),
  ),
  instructions: z.string().nullable().optional(),
  tools: z.array(FunctionToolSchema).optional(),
  tool_choice: ToolChoiceSchema.optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
  text: z.object({ format: TextFormatSchema.optional() }).optional(),
  reasoning: z.object({ effort: ReasoningEffortSchema.nullable().optional() }).nullable().optional(),
  max_output_tokens: z.int().min(1).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  previous_response_id: z.null({ error: NOT_STORED }).optional(),
  conversation: z.null({ error: NOT_STORED }).optional(),
});
export type ResponseCreateParams = z.infer<typeof ResponseCreateParamsSchema>;

// ---------------------------------------------------------------------------------------------
// Response

const ItemStatusSchema = z.enum(["in_progress", "completed", "incomplete"]);

export const OutputTextPartSchema = z.object({
  type: z.literal("output_text"),
  text: z.string(),
  annotations: z.array(z.never()),
  logprobs: z.array(z.never()),
});
export type OutputTextPart = z.infer<typeof OutputTextPartSchema>;

export const ReasoningTextPartSchema = z.object({ type: z.literal("reasoning_text"), text: z.string() });
export type ReasoningTextPart = z.infer<typeof ReasoningTextPartSchema>;

export const OutputMessageSchema = z.object({
  type: z.literal("message"),
  id: z.string(),
  status: ItemStatusSchema,
  role: z.literal("assistant"),
  content: z.array(OutputTextPartSchema),
});
export const FunctionCallSchema = z.object({
  type: z.literal("function_call"),
  id: z.string(),
  call_id: z.string(),
  name: z.string(),
  arguments: z.string(),
  status: ItemStatusSchema,
});
/** A local model's reasoning is its raw text (`content`), not a summary. */
export const ReasoningSchema = z.object({
  type: z.literal("reasoning"),
  id: z.string(),
  summary: z.array(z.never()),
  content: z.array(ReasoningTextPartSchema),
  status: ItemStatusSchema,
});
export const OutputItemSchema = z.discriminatedUnion("type", [OutputMessageSchema, FunctionCallSchema, ReasoningSchema]);
export type OutputMessage = z.infer<typeof OutputMessageSchema>;
export type FunctionCall = z.infer<typeof FunctionCallSchema>;
export type Reasoning = z.infer<typeof ReasoningSchema>;
export type OutputItem = z.infer<typeof OutputItemSchema>;

export const ResponseUsageSchema = z.object({
  input_tokens: z.int(),
  input_tokens_details: z.object({ cached_tokens: z.int() }),
  output_tokens: z.int(),
  output_tokens_details: z.object({ reasoning_tokens: z.int() }),
  total_tokens: z.int(),
});
export type ResponseUsage = z.infer<typeof ResponseUsageSchema>;

export const ResponseErrorSchema = z.object({ code: z.literal("server_error"), message: z.string() });

export const ResponseSchema = z.object({
  id: z.string(),
  object: z.literal("response"),
  created_at: z.int(),
  completed_at: z.int().nullable(),
  status: z.enum(["in_progress", "completed", "incomplete", "failed"]),
  error: ResponseErrorSchema.nullable(),
  incomplete_details: z.object({ reason: z.literal("max_output_tokens") }).nullable(),
  model: z.string(),
  instructions: z.string().nullable(),
  output: z.array(OutputItemSchema),
  tools: z.array(FunctionToolSchema),
  tool_choice: ToolChoiceSchema,
  parallel_tool_calls: z.boolean(),
  text: z.object({ format: TextFormatSchema }),
  reasoning: z.object({ effort: ReasoningEffortSchema.nullable(), summary: z.null() }),
  max_output_tokens: z.int().nullable(),
  temperature: z.number().nullable(),
  top_p: z.number().nullable(),
  previous_response_id: z.null(),
  truncation: z.literal("disabled"),
  metadata: z.record(z.string(), z.string()),
  /** Absent until the response is complete (or incomplete). */
  usage: ResponseUsageSchema.optional(),
});
export type Response = z.infer<typeof ResponseSchema>;

// ---------------------------------------------------------------------------------------------
// Stream events: each carries its place in the stream (`sequence_number`)

const Sequenced = { sequence_number: z.int() };
const InItem = { ...Sequenced, item_id: z.string(), output_index: z.int() };
const InPart = { ...InItem, content_index: z.int() };

export const ResponseStreamEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("response.created"), response: ResponseSchema, ...Sequenced }),
  z.object({ type: z.literal("response.in_progress"), response: ResponseSchema, ...Sequenced }),
  z.object({ type: z.literal("response.completed"), response: ResponseSchema, ...Sequenced }),
  z.object({ type: z.literal("response.incomplete"), response: ResponseSchema, ...Sequenced }),
  z.object({ type: z.literal("response.failed"), response: ResponseSchema, ...Sequenced }),
  z.object({ type: z.literal("response.output_item.added"), item: OutputItemSchema, output_index: z.int(), ...Sequenced }),
  z.object({ type: z.literal("response.output_item.done"), item: OutputItemSchema, output_index: z.int(), ...Sequenced }),
  z.object({ type: z.literal("response.content_part.added"), part: z.union([OutputTextPartSchema, ReasoningTextPartSchema]), ...InPart }),
  z.object({ type: z.literal("response.content_part.done"), part: z.union([OutputTextPartSchema, ReasoningTextPartSchema]), ...InPart }),
  z.object({ type: z.literal("response.output_text.delta"), delta: z.string(), logprobs: z.array(z.never()), ...InPart }),
  z.object({ type: z.literal("response.output_text.done"), text: z.string(), logprobs: z.array(z.never()), ...InPart }),
  z.object({ type: z.literal("response.reasoning_text.delta"), delta: z.string(), ...InPart }),
  z.object({ type: z.literal("response.reasoning_text.done"), text: z.string(), ...InPart }),
  z.object({ type: z.literal("response.function_call_arguments.delta"), delta: z.string(), ...InItem }),
  z.object({ type: z.literal("response.function_call_arguments.done"), name: z.string(), arguments: z.string(), ...InItem }),
]);
export type ResponseStreamEvent = z.infer<typeof ResponseStreamEventSchema>;
