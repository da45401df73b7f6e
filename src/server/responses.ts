// OpenAI's Responses API as a translating layer, stateless as Ollama's: a Responses request (its
// whole conversation in `input`) becomes the native chat call, and the native answer (or stream)
// is reshaped into a response object with output items, or the Responses stream events.
import { randomBytes } from "node:crypto";
import type { RequestHandler } from "express";
import { BadRequestError } from "../api/errors.js";
import {
  ResponseCreateParamsSchema,
  type ContentPart,
  type FunctionCall,
  type FunctionTool,
  type InputItem,
  type OutputItem,
  type OutputMessage,
  type Reasoning,
  type ReasoningEffort,
  type Response,
  type ResponseCreateParams,
  type ResponseStreamEvent,
  type ResponseUsage,
} from "../api/openai-responses.js";
import type { ChatMessage, ChatRequest, ChatResponse, ToolCall } from "../api/ollama.js";
import type { Tool } from "../api/shared-fields.js";
import { applyToolChoice } from "../chat/tool-choice.js";
import { chatRequestReader } from "./chat-request.js";
import { noteUsage, notingUsage, type ServerDeps } from "./context.js";
import { noteError } from "./errors.js";
import { imageOfUrl, samplingOptions, unixSeconds } from "./openai.js";
import { expectSingle, expectStream, writeStream } from "./streams.js";

function randomId(prefix: "resp" | "msg" | "fc" | "call" | "rs"): string {
  return `${prefix}_${randomBytes(12).toString("hex")}`;
}

// ---------------------------------------------------------------------------------------------
// Requests: Responses -> native

function partsText(parts: readonly ContentPart[]): string {
  return parts.flatMap((p) => (p.type === "refusal" ? [p.refusal] : p.type === "input_image" ? [] : [p.text])).join("\n");
}

function partsImages(parts: readonly ContentPart[], at: string): string[] {
  return parts.flatMap((p) => {
    if (p.type !== "input_image") return [];
    if (!p.image_url) throw new BadRequestError(`invalid ${at}: an input_image needs an image_url (files are not stored)`);
    return [imageOfUrl(p.image_url)];
  });
}

function withImages(message: ChatMessage, images: string[]): ChatMessage {
  return images.length ? { ...message, images } : message;
}

/**
 * The items of one assistant turn (reasoning, text, function calls, in any order) become one
 * native assistant message; a function call's output names its call by call_id, the native
 * message names the function.
 */
function toOllamaMessages(body: Pick<ResponseCreateParams, "instructions" | "input">): ChatMessage[] {
  const messages: ChatMessage[] = body.instructions ? [{ role: "system", content: body.instructions }] : [];
  const namesByCallId = new Map<string, string>();
  /** The assistant message the next assistant item joins (the last message, if it is the assistant's). */
  const assistantTurn = (): ChatMessage => {
    const last = messages.at(-1);
    if (last?.role === "assistant") return last;
    const created: ChatMessage = { role: "assistant", content: "" };
    messages.push(created);
    return created;
  };
  body.input.forEach((item: InputItem, i) => {
    const at = `input.${i}`;
    switch (item.type) {
      case "message": {
        const content = partsText(item.content);
        if (item.role !== "assistant") {
          const role = item.role === "developer" ? "system" : item.role;
          messages.push(withImages({ role, content }, partsImages(item.content, at)));
          return;
        }
        const turn = assistantTurn();
        turn.content = turn.content ? `${turn.content}\n${content}` : content;
        return;
      }
      case "reasoning": {
        const text = [...(item.content ?? []), ...item.summary].map((p) => p.text).join("\n");
        const turn = assistantTurn();
        turn.thinking = turn.thinking ? `${turn.thinking}\n${text}` : text;
        return;
      }
      case "function_call": {
        namesByCallId.set(item.call_id, item.name);
        const turn = assistantTurn();
        turn.tool_calls = [...(turn.tool_calls ?? []), { function: { name: item.name, arguments: parseArguments(item.arguments, at) } }];
        return;
      }
      case "function_call_output": {
        const name = namesByCallId.get(item.call_id);
        if (name === undefined) {
          throw new BadRequestError(`invalid ${at}.call_id: ${JSON.stringify(item.call_id)} answers no function_call item before it`);
        }
        messages.push(withImages({ role: "tool", content: partsText(item.output), tool_name: name }, partsImages(item.output, at)));
        return;
      }
    }
  });
  return messages;
}

function parseArguments(text: string, at: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = text.trim() === "" ? {} : JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new BadRequestError(`invalid ${at}.arguments: expected a JSON object string`);
  }
  return value as Record<string, unknown>;
}

function toNativeTool(tool: FunctionTool): Tool {
  return {
    type: "function",
    function: {
      name: tool.name,
      ...(tool.description != null ? { description: tool.description } : {}),
      ...(tool.parameters != null ? { parameters: tool.parameters } : {}),
    },
  };
}

function textFormat(format: NonNullable<ResponseCreateParams["text"]>["format"]): ChatRequest["format"] {
  if (format === undefined || format.type === "text") return undefined;
  return format.type === "json_object" ? "json" : format.schema;
}

/** "none" turns thinking off; the levels map onto the model's three (minimal is low, xhigh high). */
const THINK_BY_EFFORT: Record<ReasoningEffort, ChatRequest["think"]> = {
  none: false,
  minimal: "low",
  low: "low",
  medium: "medium",
  high: "high",
  xhigh: "high",
};

/** The tools the model is offered, the format and thinking, by tool_choice (src/chat/tool-choice.ts). */
function toolsFormatAndThink(body: ResponseCreateParams) {
  const choice = body.tool_choice ?? "auto";
  const effort = body.reasoning?.effort;
  return applyToolChoice({
    tools: (body.tools ?? []).map(toNativeTool),
    choice: typeof choice === "string" ? choice : { name: choice.name },
    format: textFormat(body.text?.format),
    think: effort != null ? THINK_BY_EFFORT[effort] : undefined,
  }, {
    needsTools: "invalid tool_choice: forcing a call needs tools",
    unknownName: (name) => `invalid tool_choice.name: no function named ${JSON.stringify(name)}`,
    withFormat: "text.format cannot be combined with a tool_choice that forces a call",
  });
}

function toChatRequest(body: ResponseCreateParams): ChatRequest {
  const { tools, format, think, tool_choice } = toolsFormatAndThink(body);
  return {
    model: body.model,
    messages: toOllamaMessages(body),
    stream: body.stream === true,
    options: samplingOptions(body, body.max_output_tokens),
    ...(tools ? { tools } : {}),
    ...(format !== undefined ? { format } : {}),
    ...(think !== undefined ? { think } : {}),
    ...(tool_choice !== undefined ? { tool_choice } : {}),
    ...(tools && body.parallel_tool_calls === false ? { parallel_tool_calls: false } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Responses: native -> Responses

/** The response as it stands before any output: the request's settings echoed, status in_progress. */
function startedResponse(body: ResponseCreateParams, id: string): Response {
  return {
    id,
    object: "response",
    created_at: unixSeconds(new Date()),
    completed_at: null,
    status: "in_progress",
    error: null,
    incomplete_details: null,
    model: body.model,
    instructions: body.instructions ?? null,
    output: [],
    tools: (body.tools ?? []).map((t) => ({ ...t, description: t.description ?? null, parameters: t.parameters ?? null, strict: t.strict ?? null })),
    tool_choice: body.tool_choice ?? "auto",
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    text: { format: body.text?.format ?? { type: "text" } },
    reasoning: { effort: body.reasoning?.effort ?? null, summary: null },
    max_output_tokens: body.max_output_tokens ?? null,
    temperature: body.temperature ?? null,
    top_p: body.top_p ?? null,
    previous_response_id: null,
    truncation: "disabled",
    metadata: body.metadata ?? {},
  };
}

/** Reasoning tokens are not counted apart from the answer's: 0, as cached (prefix-cache) tokens. */
function usageOf(final: ChatResponse): ResponseUsage {
  const input = final.prompt_eval_count ?? 0;
  const output = final.eval_count ?? 0;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: input + output,
  };
}

/** The finished response: completed, or incomplete when max_output_tokens cut it. */
function finishedResponse(started: Response, output: OutputItem[], final: ChatResponse): Response {
  const cut = final.done_reason === "length";
  return {
    ...started,
    status: cut ? "incomplete" : "completed",
    completed_at: unixSeconds(new Date()),
    incomplete_details: cut ? { reason: "max_output_tokens" } : null,
    output,
    usage: usageOf(final),
  };
}

function functionCall(call: ToolCall): FunctionCall {
  return {
    type: "function_call", id: randomId("fc"), call_id: randomId("call"),
    name: call.function.name, arguments: JSON.stringify(call.function.arguments), status: "completed",
  };
}

function messageItem(text: string, status: OutputMessage["status"]): OutputMessage {
  return { type: "message", id: randomId("msg"), status, role: "assistant", content: [{ type: "output_text", text, annotations: [], logprobs: [] }] };
}

function reasoningItem(text: string): Reasoning {
  return { type: "reasoning", id: randomId("rs"), summary: [], content: [{ type: "reasoning_text", text }], status: "completed" };
}

/** Reasoning first, then the message (present unless the answer is only function calls), then the calls. */
function toResponse(response: ChatResponse, started: Response): Response {
  const { content, thinking, tool_calls: calls = [] } = response.message;
  const output: OutputItem[] = [];
  if (thinking) output.push(reasoningItem(thinking));
  if (content !== "" || calls.length === 0) output.push(messageItem(content, response.done_reason === "length" ? "incomplete" : "completed"));
  output.push(...calls.map(functionCall));
  return finishedResponse(started, output, response);
}

type StreamEvent = ResponseStreamEvent extends infer E ? (E extends ResponseStreamEvent ? Omit<E, "sequence_number"> : never) : never;

/**
 * The output items of a stream: an item opens when its kind of text starts (reasoning, then the
 * message), closing the one before; function calls arrive whole once generation ends.
 */
class StreamedOutput {
  readonly items: OutputItem[] = [];
  private open: { kind: "message" | "reasoning"; item: OutputMessage | Reasoning; text: string } | undefined;

  *append(kind: "message" | "reasoning", text: string): Generator<StreamEvent> {
    if (text === "") return;
    yield* this.start(kind);
    const open = this.open!;
    open.text += text;
    const at = { item_id: open.item.id, output_index: this.items.length - 1, content_index: 0 };
    yield kind === "message"
      ? { type: "response.output_text.delta", ...at, delta: text, logprobs: [] }
      : { type: "response.reasoning_text.delta", ...at, delta: text };
  }

  *start(kind: "message" | "reasoning"): Generator<StreamEvent> {
    if (this.open?.kind === kind) return;
    yield* this.close("completed");
    const item: OutputMessage | Reasoning =
      kind === "message" ? { ...messageItem("", "in_progress"), content: [] } : { ...reasoningItem(""), content: [], status: "in_progress" };
    this.items.push(item);
    this.open = { kind, item, text: "" };
    const output_index = this.items.length - 1;
    yield { type: "response.output_item.added", output_index, item };
    const part = kind === "message" ? { type: "output_text" as const, text: "", annotations: [], logprobs: [] } : { type: "reasoning_text" as const, text: "" };
    yield { type: "response.content_part.added", item_id: item.id, output_index, content_index: 0, part };
  }

  *close(status: "completed" | "incomplete"): Generator<StreamEvent> {
    const open = this.open;
    if (open === undefined) return;
    this.open = undefined;
    const output_index = this.items.length - 1;
    const at = { item_id: open.item.id, output_index, content_index: 0 };
    let item: OutputItem;
    if (open.kind === "message") {
      item = { ...messageItem(open.text, status), id: open.item.id };
      yield { type: "response.output_text.done", ...at, text: open.text, logprobs: [] };
      yield { type: "response.content_part.done", ...at, part: item.content[0]! };
    } else {
      item = { ...reasoningItem(open.text), id: open.item.id };
      yield { type: "response.reasoning_text.done", ...at, text: open.text };
      yield { type: "response.content_part.done", ...at, part: item.content[0]! };
    }
    this.items[output_index] = item;
    yield { type: "response.output_item.done", output_index, item };
  }

  *functionCall(call: ToolCall): Generator<StreamEvent> {
    yield* this.close("completed");
    const item = functionCall(call);
    this.items.push(item);
    const at = { item_id: item.id, output_index: this.items.length - 1 };
    yield { type: "response.output_item.added", output_index: at.output_index, item: { ...item, arguments: "", status: "in_progress" } };
    yield { type: "response.function_call_arguments.delta", ...at, delta: item.arguments };
    yield { type: "response.function_call_arguments.done", ...at, name: item.name, arguments: item.arguments };
    yield { type: "response.output_item.done", output_index: at.output_index, item };
  }
}

/**
 * response.created and response.in_progress, the output items as they stream, then
 * response.completed (or response.incomplete when cut by max_output_tokens). A generation that
 * fails after the stream began ends it with response.failed, carrying the error's message.
 */
async function* toResponseEvents(
  chunks: AsyncIterable<ChatResponse>,
  started: Response,
  onFailure: (error: unknown) => string,
): AsyncGenerator<StreamEvent> {
  yield { type: "response.created", response: started };
  yield { type: "response.in_progress", response: started };
  const output = new StreamedOutput();
  try {
    for await (const chunk of chunks) {
      yield* output.append("reasoning", chunk.message.thinking ?? "");
      yield* output.append("message", chunk.message.content);
      // Each call comes as soon as the engine parsed it whole.
      for (const call of chunk.message.tool_calls ?? []) yield* output.functionCall(call);
      if (!chunk.done) continue;
      // A reply with no output at all still has its (empty) message, as the whole response does.
      if (output.items.length === 0) yield* output.start("message");
      yield* output.close(chunk.done_reason === "length" ? "incomplete" : "completed");
      const response = finishedResponse(started, output.items, chunk);
      yield { type: response.status === "incomplete" ? "response.incomplete" : "response.completed", response };
    }
  } catch (error) {
    const message = onFailure(error);
    yield* output.close("incomplete");
    yield { type: "response.failed", response: { ...started, status: "failed", error: { code: "server_error", message }, output: output.items } };
  }
}

async function* numbered(events: AsyncIterable<StreamEvent>): AsyncGenerator<ResponseStreamEvent> {
  let sequence_number = 0;
  for await (const event of events) yield { ...event, sequence_number: sequence_number++ } as ResponseStreamEvent;
}

// ---------------------------------------------------------------------------------------------
// Handlers

export function responsesHandlers({ engine, config, logger }: ServerDeps) {
  const readChatRequest = chatRequestReader(config);
  const handlers = {
    create: async (req, res) => {
      const { body, signal, request } = await readChatRequest(ResponseCreateParamsSchema, toChatRequest, req, res);
      const result = await engine.chat(request, { signal });
      const started = startedResponse(body, randomId("resp"));
      if (!request.stream) {
        const response = expectSingle(result);
        noteUsage(res, response);
        res.json(toResponse(response, started));
        return;
      }
      const chunks = notingUsage(res, expectStream(result));
      await writeStream(res, "sse-events", numbered(toResponseEvents(chunks, started, (error) => noteError(res, error, logger).message)));
    },
  } satisfies Record<string, RequestHandler>;
  return handlers;
}
