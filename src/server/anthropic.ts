// Anthropic's Messages API as a translating layer: a Messages request becomes the native chat
// call, and the native answer (or stream) is reshaped into Anthropic's message and SSE events.
import { randomBytes } from "node:crypto";
import type { RequestHandler } from "express";
import {
  MessageCountTokensParamsSchema,
  MessageCreateParamsSchema,
  type ContentBlock,
  type ContentBlockParam,
  type Message,
  type MessageCreateParams,
  type MessageDeltaUsage,
  type MessageParam,
  type MessageStreamEvent,
  type MessageTokensCount,
  type StopReason,
  type ToolParam,
  type Usage,
} from "../api/anthropic.js";
import { BadRequestError } from "../api/errors.js";
import type { ChatMessage, ChatRequest, ChatResponse, Options, ToolCall } from "../api/ollama.js";
import type { Tool } from "../api/shared-fields.js";
import { parseRequest } from "../api/validate.js";
import { applyToolChoice, type ToolChoice } from "../chat/tool-choice.js";
import { chatRequestReader } from "./chat-request.js";
import { notes, noteUsage, notingUsage, type ServerDeps } from "./context.js";
import { isRemoteImage } from "./remote-images.js";
import { expectSingle, expectStream, writeStream } from "./streams.js";

/** Anthropic's default temperature (1), not Ollama's, as the OpenAI layer keeps OpenAI's. */
const DEFAULT_TEMPERATURE = 1;

function randomId(prefix: "msg" | "toolu"): string {
  return `${prefix}_${randomBytes(12).toString("hex")}`;
}

// ---------------------------------------------------------------------------------------------
// Requests: Anthropic -> native

function texts(blocks: readonly { text: string }[]): string {
  return blocks.map((b) => b.text).join("\n");
}

/** An image as the native request carries it: base64, or an http(s) URL (fetched later: remote-images.ts). */
function imageData(block: Extract<ContentBlockParam, { type: "image" }>): string {
  if (block.source.type === "base64") return block.source.data;
  if (!isRemoteImage(block.source.url)) throw new BadRequestError("invalid image source: a url source needs an http or https URL");
  return block.source.url;
}

/** The blocks each role may send, as Anthropic takes them. */
const BLOCKS_BY_ROLE: Record<MessageParam["role"], ReadonlyArray<ContentBlockParam["type"]>> = {
  system: ["text"],
  user: ["text", "image", "tool_result"],
  assistant: ["text", "thinking", "redacted_thinking", "tool_use"],
};

/**
 * One Anthropic message becomes one native message, except a user message with tool results:
 * each result becomes a tool message (named by its tool_use block's id), then the rest of the
 * user's text and images follow as a user message.
 */
function toNativeMessages(message: MessageParam, at: string, toolNamesById: Map<string, string>): ChatMessage[] {
  const text: string[] = [];
  const images: string[] = [];
  const thinking: string[] = [];
  const toolCalls: ToolCall[] = [];
  const toolResults: ChatMessage[] = [];
  message.content.forEach((block, j) => {
    const blockAt = `${at}.content.${j}`;
    if (!BLOCKS_BY_ROLE[message.role].includes(block.type)) {
      throw new BadRequestError(`invalid ${blockAt}: ${message.role} messages cannot hold ${block.type} blocks`);
    }
    switch (block.type) {
      case "text":
        text.push(block.text);
        break;
      case "image":
        images.push(imageData(block));
        break;
      case "thinking":
        thinking.push(block.thinking);
        break;
      case "redacted_thinking":
        break; // opaque: nothing a local model can read
      case "tool_use":
        toolNamesById.set(block.id, block.name);
        toolCalls.push({ function: { name: block.name, arguments: block.input } });
        break;
      case "tool_result": {
        const name = toolNamesById.get(block.tool_use_id);
        if (name === undefined) {
          throw new BadRequestError(
            `invalid ${blockAt}.tool_use_id: ${JSON.stringify(block.tool_use_id)} answers no tool_use block of an earlier message`,
          );
        }
        const content = block.content ?? [];
        const resultImages = content.flatMap((b) => (b.type === "image" ? [imageData(b)] : []));
        toolResults.push({
          role: "tool",
          content: texts(content.filter((b) => b.type === "text")),
          tool_name: name,
          ...(resultImages.length ? { images: resultImages } : {}),
        });
        break;
      }
    }
  });
  if (message.role === "user") {
    // Tool results alone add no user turn of their own.
    if (toolResults.length > 0 && text.length === 0 && images.length === 0) return toolResults;
    return [...toolResults, { role: "user", content: text.join("\n"), ...(images.length ? { images } : {}) }];
  }
  return [{
    role: message.role,
    content: text.join("\n"),
    ...(thinking.length ? { thinking: thinking.join("\n") } : {}),
    ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
  }];
}

function toOllamaMessages(body: Pick<MessageCreateParams, "system" | "messages">): ChatMessage[] {
  const toolNamesById = new Map<string, string>();
  const system: ChatMessage[] = body.system?.length ? [{ role: "system", content: texts(body.system) }] : [];
  return [...system, ...body.messages.flatMap((m, i) => toNativeMessages(m, `messages.${i}`, toolNamesById))];
}

function toNativeTool(tool: ToolParam): Tool {
  return {
    type: "function",
    function: { name: tool.name, parameters: tool.input_schema, ...(tool.description !== undefined ? { description: tool.description } : {}) },
  };
}

/** thinking "enabled"/"disabled" turn the model's thinking on or off; "adaptive" leaves it to the model. */
function thinkOf(thinking: MessageCreateParams["thinking"]): ChatRequest["think"] {
  if (thinking === undefined || thinking.type === "adaptive") return undefined;
  return thinking.type === "enabled";
}

/** Anthropic's tool_choice in the common spelling: `any` is "required", `tool` names one. */
function toolChoiceOf(choice: MessageCreateParams["tool_choice"]): ToolChoice {
  if (choice === undefined || choice.type === "auto") return "auto";
  if (choice.type === "tool") return { name: choice.name };
  return choice.type === "any" ? "required" : "none";
}

/** The tools the model is offered, the format and thinking, by tool_choice (src/chat/tool-choice.ts). */
function toolsFormatAndThink(body: Pick<MessageCreateParams, "tools" | "tool_choice" | "thinking" | "output_config">) {
  const type = body.tool_choice?.type;
  return applyToolChoice({
    tools: (body.tools ?? []).map(toNativeTool),
    choice: toolChoiceOf(body.tool_choice),
    format: body.output_config?.format?.schema,
    think: thinkOf(body.thinking),
  }, {
    needsTools: `invalid tool_choice: "${type}" needs tools`,
    unknownName: (name) => `invalid tool_choice.name: no tool named ${JSON.stringify(name)}`,
    withFormat: "output_config.format cannot be combined with a tool_choice that forces tool use",
    withThinking: "Thinking may not be enabled when tool_choice forces tool use.",
  });
}

function samplingOptions(body: MessageCreateParams): Options {
  const options: Options = { temperature: body.temperature ?? DEFAULT_TEMPERATURE, num_predict: body.max_tokens };
  if (body.top_p !== undefined) options.top_p = body.top_p;
  if (body.top_k !== undefined) options.top_k = body.top_k;
  if (body.stop_sequences?.length) options.stop = body.stop_sequences;
  return options;
}

function toChatRequest(body: MessageCreateParams): ChatRequest {
  const { tools, format, think, tool_choice } = toolsFormatAndThink(body);
  const oneCall = body.tool_choice !== undefined && "disable_parallel_tool_use" in body.tool_choice && body.tool_choice.disable_parallel_tool_use === true;
  return {
    model: body.model,
    messages: toOllamaMessages(body),
    stream: body.stream === true,
    options: samplingOptions(body),
    ...(tools ? { tools } : {}),
    ...(format !== undefined ? { format } : {}),
    ...(think !== undefined ? { think } : {}),
    ...(tool_choice !== undefined ? { tool_choice } : {}),
    ...(tools && oneCall ? { parallel_tool_calls: false } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Responses: native -> Anthropic

/**
 * Why the answer ended, and the stop sequence that ended it (the engine names the one that
 * matched). A stop string the request did not send (the chat library's end of a family's turn) is
 * the end of the turn.
 */
function stopOf(final: ChatResponse, calledTools: boolean, requested: readonly string[]): { stop_reason: StopReason; stop_sequence: string | null } {
  if (calledTools) return { stop_reason: "tool_use", stop_sequence: null };
  if (final.stop_sequence !== undefined && requested.includes(final.stop_sequence)) return { stop_reason: "stop_sequence", stop_sequence: final.stop_sequence };
  return { stop_reason: final.done_reason === "length" ? "max_tokens" : "end_turn", stop_sequence: null };
}

type TokenCounts = Pick<ChatResponse, "prompt_eval_count" | "eval_count">;

function deltaUsage(final: TokenCounts): MessageDeltaUsage {
  return {
    input_tokens: final.prompt_eval_count ?? 0,
    output_tokens: final.eval_count ?? 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens_details: null,
    server_tool_use: null,
  };
}

function usage(final: TokenCounts): Usage {
  return { ...deltaUsage(final), cache_creation: null, inference_geo: null, service_tier: "standard", speed: null };
}

function toolUseBlock(call: ToolCall): Extract<ContentBlock, { type: "tool_use" }> {
  return { type: "tool_use", id: randomId("toolu"), name: call.function.name, input: call.function.arguments, caller: { type: "direct" } };
}

/** A message without content blocks yet: the whole answer fills them in, a stream's events add them. */
function emptyMessage(id: string, model: string): Message {
  return {
    id, type: "message", role: "assistant", model, content: [],
    stop_reason: null, stop_sequence: null, stop_details: null, container: null, diagnostics: null, usage: usage({}),
  };
}

/** Thinking first, then the text (always present unless the answer is only tool calls), then tool uses. */
function toMessage(response: ChatResponse, id: string, body: MessageCreateParams): Message {
  const { content, thinking, tool_calls: calls = [] } = response.message;
  const blocks: ContentBlock[] = [];
  if (thinking) blocks.push({ type: "thinking", thinking, signature: "" });
  if (content !== "" || calls.length === 0) blocks.push({ type: "text", text: content, citations: null });
  blocks.push(...calls.map(toolUseBlock));
  return {
    ...emptyMessage(id, body.model),
    content: blocks,
    ...stopOf(response, calls.length > 0, body.stop_sequences ?? []),
    usage: usage(response),
  };
}

/** The content blocks of a stream: a block opens when its kind of text starts, closing the one before. */
class StreamedBlocks {
  private index = -1;
  private open: "text" | "thinking" | undefined;

  *append(kind: "text" | "thinking", text: string): Generator<MessageStreamEvent> {
    if (text === "") return;
    yield* this.start(kind);
    const delta = kind === "text" ? { type: "text_delta" as const, text } : { type: "thinking_delta" as const, thinking: text };
    yield { type: "content_block_delta", index: this.index, delta };
  }

  *start(kind: "text" | "thinking"): Generator<MessageStreamEvent> {
    if (this.open === kind) return;
    yield* this.close();
    this.index++;
    this.open = kind;
    const block: ContentBlock = kind === "text" ? { type: "text", text: "", citations: null } : { type: "thinking", thinking: "", signature: "" };
    yield { type: "content_block_start", index: this.index, content_block: block };
  }

  /** A tool use is whole when it arrives (the engine passes on each call once it is complete). */
  *toolUse(call: ToolCall): Generator<MessageStreamEvent> {
    yield* this.close();
    this.index++;
    yield { type: "content_block_start", index: this.index, content_block: { ...toolUseBlock(call), input: {} } };
    yield { type: "content_block_delta", index: this.index, delta: { type: "input_json_delta", partial_json: JSON.stringify(call.function.arguments) } };
    yield { type: "content_block_stop", index: this.index };
  }

  *close(): Generator<MessageStreamEvent> {
    if (this.open === undefined) return;
    yield { type: "content_block_stop", index: this.index };
    this.open = undefined;
  }

  get count(): number {
    return this.index + 1;
  }
}

/**
 * message_start (usage not known yet), ping, the content blocks as they stream, message_delta
 * with the stop reason and the whole usage, message_stop.
 */
async function* toMessageStreamEvents(chunks: AsyncIterable<ChatResponse>, id: string, body: MessageCreateParams): AsyncGenerator<MessageStreamEvent> {
  yield { type: "message_start", message: emptyMessage(id, body.model) };
  yield { type: "ping" };
  const blocks = new StreamedBlocks();
  let calledTools = false;
  for await (const chunk of chunks) {
    yield* blocks.append("thinking", chunk.message.thinking ?? "");
    yield* blocks.append("text", chunk.message.content);
    // Each call comes as soon as the engine parsed it whole.
    for (const call of chunk.message.tool_calls ?? []) {
      calledTools = true;
      yield* blocks.toolUse(call);
    }
    if (!chunk.done) continue;
    // A reply with no output at all still has its (empty) text block, as the whole message does.
    if (blocks.count === 0) yield* blocks.start("text");
    yield* blocks.close();
    yield {
      type: "message_delta",
      delta: { ...stopOf(chunk, calledTools, body.stop_sequences ?? []), stop_details: null, container: null },
      usage: deltaUsage(chunk),
    };
    yield { type: "message_stop" };
  }
}

// ---------------------------------------------------------------------------------------------
// Handlers

export function anthropicHandlers({ engine, config }: ServerDeps) {
  const readChatRequest = chatRequestReader(config);
  const handlers = {
    messages: async (req, res) => {
      const { body, signal, request } = await readChatRequest(MessageCreateParamsSchema, toChatRequest, req, res);
      const result = await engine.chat(request, { signal });
      const id = randomId("msg");
      if (!request.stream) {
        const response = expectSingle(result);
        noteUsage(res, response);
        res.json(toMessage(response, id, body));
        return;
      }
      await writeStream(res, "sse-events", toMessageStreamEvents(notingUsage(res, expectStream(result)), id, body));
    },

    /** The prompt's tokens as the model's template renders it: system, messages and the tools offered. */
    countTokens: async (req, res) => {
      const body = parseRequest(MessageCountTokensParamsSchema, req.body);
      notes(res).model = body.model;
      const { tools, think } = toolsFormatAndThink(body);
      const { tokens } = await engine.tokenizeChat({
        model: body.model,
        messages: toOllamaMessages(body),
        ...(tools ? { tools } : {}),
        ...(think !== undefined ? { think } : {}),
      });
      const count: MessageTokensCount = { input_tokens: tokens.length };
      notes(res).promptTokens = count.input_tokens;
      res.json(count);
    },
  } satisfies Record<string, RequestHandler>;
  return handlers;
}
