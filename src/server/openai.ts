// The OpenAI-compatible API as a translating layer: an OpenAI request becomes the native engine
// call, and the native answer (or stream) is reshaped into OpenAI's objects and SSE chunks.
import { randomBytes } from "node:crypto";
import type { RequestHandler } from "express";
import { BadRequestError } from "../api/errors.js";
import type {
  ChatMessage,
  ChatRequest,
  ChatResponse,
  DoneReason,
  GenerateRequest,
  GenerateResponse,
  Logprob,
  Options,
  ToolCall,
} from "../api/ollama.js";
import {
  ChatCompletionRequestSchema,
  CompletionRequestSchema,
  OpenAIEmbeddingRequestSchema,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatCompletionRequest,
  type Completion,
  type CompletionLogprobs,
  type CompletionRequest,
  type FinishReason,
  type OpenAIChatMessage,
  type OpenAIEmbeddingResponse,
  type OpenAILogprobs,
  type OpenAIModel,
  type OpenAIToolCall,
  type OpenAIUsage,
  MAX_CHOICES,
} from "../api/openai.js";
import { parseRequest } from "../api/validate.js";
import { applyToolChoice, chatToolChoice, chatToolChoiceWording } from "../chat/tool-choice.js";
import { choicesOf, startAll, mergeStreams, type Choice } from "./choices.js";
import { chatRequestReader } from "./chat-request.js";
import { notes, noteUsage, type ServerDeps } from "./context.js";
import { isRemoteImage } from "./remote-images.js";
import { abortOnDisconnect, expectSingle, expectStream, writeStream } from "./streams.js";

const SYSTEM_FINGERPRINT = "fp_vllama";
/** Ollama reports every local model as owned by "library". */
const OWNED_BY = "library";

interface CompletionMeta {
  id: string;
  created: number;
  model: string;
  system_fingerprint: string;
}

function completionMeta(prefix: "chatcmpl" | "cmpl", model: string): CompletionMeta {
  return {
    id: `${prefix}-${randomBytes(12).toString("hex")}`,
    created: unixSeconds(new Date()),
    model,
    system_fingerprint: SYSTEM_FINGERPRINT,
  };
}

export function unixSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

// ---------------------------------------------------------------------------------------------
// Requests: OpenAI -> native

type Sampling = Pick<
  ChatCompletionRequest,
  | "temperature"
  | "top_p"
  | "seed"
  | "stop"
  | "frequency_penalty"
  | "presence_penalty"
  | "top_k"
  | "min_p"
  | "repetition_penalty"
  | "logit_bias"
  | "min_tokens"
>;

/** OpenAI's own defaults for temperature and top_p (1), not Ollama's, as Ollama's layer does. */
export function samplingOptions(body: Sampling, maxTokens: number | null | undefined): Options {
  const options: Options = { temperature: body.temperature ?? 1, top_p: body.top_p ?? 1 };
  if (maxTokens != null) options.num_predict = maxTokens;
  if (body.seed != null) options.seed = body.seed;
  if (body.stop != null) options.stop = body.stop;
  if (body.frequency_penalty != null) options.frequency_penalty = body.frequency_penalty;
  if (body.presence_penalty != null) options.presence_penalty = body.presence_penalty;
  if (body.top_k != null) options.top_k = Math.max(body.top_k, 0);
  if (body.min_p != null) options.min_p = body.min_p;
  if (body.repetition_penalty != null) options.repeat_penalty = body.repetition_penalty;
  if (body.logit_bias != null) options.logit_bias = body.logit_bias;
  if (body.min_tokens != null) options.min_tokens = body.min_tokens;
  return options;
}

const DATA_URL = /^data:image\/[\w.+-]+;base64,(.+)$/s;

/** An image URL as the native request carries it: a data URL's base64, an http(s) URL as is (fetched later: remote-images.ts). */
export function imageOfUrl(url: string): string {
  if (isRemoteImage(url)) return url;
  const match = DATA_URL.exec(url);
  if (!match) throw new BadRequestError("invalid image_url: expected a base64 data URL (data:image/...;base64,...) or an http(s) URL");
  return match[1]!;
}

/** Text parts are joined; images are data URLs or http(s) URLs. */
function splitContent(content: OpenAIChatMessage["content"]): { text: string; images?: string[] } {
  if (content == null) return { text: "" };
  if (typeof content === "string") return { text: content };
  const texts: string[] = [];
  const images: string[] = [];
  for (const part of content) {
    if (part.type === "text") {
      texts.push(part.text);
      continue;
    }
    images.push(imageOfUrl(typeof part.image_url === "string" ? part.image_url : part.image_url.url));
  }
  return images.length > 0 ? { text: texts.join("\n"), images } : { text: texts.join("\n") };
}

function parseToolArguments(text: string): Record<string, unknown> {
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadRequestError("invalid tool_calls arguments: expected a JSON object string");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new BadRequestError("invalid tool_calls arguments: expected a JSON object string");
  }
  return value as Record<string, unknown>;
}

/** Tool results name their call by id; the native API names the tool, so ids are resolved here. */
export function toOllamaMessages(messages: readonly OpenAIChatMessage[]): ChatMessage[] {
  const toolNamesById = new Map<string, string>();
  return messages.map((m) => {
    const { text, images } = splitContent(m.content);
    const message: ChatMessage = { role: m.role === "developer" ? "system" : m.role, content: text };
    if (images) message.images = images;
    if (m.reasoning !== undefined) message.thinking = m.reasoning;
    if (m.tool_calls?.length) {
      message.tool_calls = m.tool_calls.map((call) => {
        if (call.id !== undefined) toolNamesById.set(call.id, call.function.name);
        return { function: { name: call.function.name, arguments: parseToolArguments(call.function.arguments) } };
      });
    }
    if (m.role === "tool") {
      const name = (m.tool_call_id !== undefined ? toolNamesById.get(m.tool_call_id) : undefined) ?? m.name;
      if (name !== undefined) message.tool_name = name;
    }
    return message;
  });
}

function formatOf(responseFormat: ChatCompletionRequest["response_format"]): ChatRequest["format"] {
  if (responseFormat == null || responseFormat.type === "text") return undefined;
  return responseFormat.type === "json_object" ? "json" : responseFormat.json_schema.schema;
}

/** "none" and "minimal" (OpenAI's lowest efforts) turn thinking off; the rest are Ollama's levels. */
function thinkOf(effort: NonNullable<ChatCompletionRequest["reasoning_effort"]>): ChatRequest["think"] {
  return effort === "none" || effort === "minimal" ? false : effort;
}

export function toChatRequest(body: ChatCompletionRequest): ChatRequest {
  const request: ChatRequest = {
    model: body.model,
    messages: toOllamaMessages(body.messages),
    stream: body.stream === true,
    options: samplingOptions(body, body.max_completion_tokens ?? body.max_tokens),
  };
  const settings = applyToolChoice({
    tools: body.tools ?? [],
    choice: chatToolChoice(body.tool_choice),
    format: formatOf(body.response_format),
    think: body.reasoning_effort != null ? thinkOf(body.reasoning_effort) : undefined,
  }, chatToolChoiceWording("response_format"));
  Object.assign(request, settings);
  if (body.parallel_tool_calls === false && settings.tools) request.parallel_tool_calls = false;
  if (body.logprobs) {
    request.logprobs = true;
    if (body.top_logprobs != null) request.top_logprobs = body.top_logprobs;
  }
  return request;
}

export function toGenerateRequests(body: CompletionRequest): GenerateRequest[] {
  return body.prompt.map((prompt) => {
    const request: GenerateRequest = {
      model: body.model,
      prompt,
      stream: body.stream === true,
      options: samplingOptions(body, body.max_tokens),
    };
    if (body.suffix != null) request.suffix = body.suffix;
    // Legacy `logprobs: n` asks for the chosen token's logprob plus the n most likely.
    if (body.logprobs != null) {
      request.logprobs = true;
      request.top_logprobs = body.logprobs;
    }
    return request;
  });
}

/** The request's choices: `n` per prompt, at most MAX_CHOICES in all. */
function requestChoices<R extends { options?: Options }>(requests: R[], n: number | null | undefined): Choice<R>[] {
  const perPrompt = n ?? 1;
  if (requests.length * perPrompt > MAX_CHOICES) {
    throw new BadRequestError(`too many choices: ${requests.length} prompts x n ${perPrompt} is over ${MAX_CHOICES}`);
  }
  return choicesOf(requests, perPrompt);
}

// ---------------------------------------------------------------------------------------------
// Responses: native -> OpenAI

function finishReason(doneReason: DoneReason | undefined, calledTools: boolean): FinishReason {
  if (calledTools) return "tool_calls";
  return doneReason === "length" ? "length" : "stop";
}

type FinalCounts = { prompt_eval_count?: number; eval_count?: number };

/** A prompt counts once however many choices it has (choice i is of prompt i / n); completions all count. */
function usageOf(finals: readonly FinalCounts[], n: number): OpenAIUsage {
  let prompt = 0;
  let completion = 0;
  finals.forEach((final, i) => {
    if (i % n === 0) prompt += final.prompt_eval_count ?? 0;
    completion += final.eval_count ?? 0;
  });
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function toOpenAIToolCalls(calls: readonly ToolCall[]): Array<OpenAIToolCall & { id: string }> {
  return calls.map((call) => ({
    id: `call_${randomBytes(8).toString("hex")}`,
    type: "function" as const,
    function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments) },
  }));
}

function tokenBytes(token: string, bytes: number[] | undefined): number[] {
  return bytes ?? [...Buffer.from(token, "utf8")];
}

function toOpenAILogprobs(logprobs: readonly Logprob[] | undefined): OpenAILogprobs | null {
  if (!logprobs?.length) return null;
  return {
    content: logprobs.map((l) => ({
      token: l.token,
      logprob: l.logprob,
      bytes: tokenBytes(l.token, l.bytes),
      top_logprobs: (l.top_logprobs ?? []).map((t) => ({
        token: t.token,
        logprob: t.logprob,
        bytes: tokenBytes(t.token, t.bytes),
      })),
    })),
  };
}

/** Legacy completions logprobs; `offset` is where this piece starts in the whole text. */
function toCompletionLogprobs(logprobs: readonly Logprob[] | undefined, offset: number): CompletionLogprobs | null {
  if (!logprobs?.length) return null;
  const text_offset: number[] = [];
  let at = offset;
  for (const l of logprobs) {
    text_offset.push(at);
    at += l.token.length;
  }
  return {
    tokens: logprobs.map((l) => l.token),
    token_logprobs: logprobs.map((l) => l.logprob),
    top_logprobs: logprobs.map((l) => Object.fromEntries((l.top_logprobs ?? []).map((t) => [t.token, t.logprob]))),
    text_offset,
  };
}

type ChatChoice = ChatCompletion["choices"][number];

function toChatChoice(response: ChatResponse, index: number): ChatChoice {
  const toolCalls = response.message.tool_calls?.length ? toOpenAIToolCalls(response.message.tool_calls) : undefined;
  const message: ChatChoice["message"] = {
    role: "assistant",
    content: toolCalls && response.message.content === "" ? null : response.message.content,
  };
  if (response.message.thinking) message.reasoning = response.message.thinking;
  if (toolCalls) message.tool_calls = toolCalls;
  return {
    index,
    message,
    finish_reason: finishReason(response.done_reason, toolCalls !== undefined),
    logprobs: toOpenAILogprobs(response.logprobs),
  };
}

/** One chat.completion of every choice, in index order; `n` choices per prompt. */
export function toChatCompletion(responses: readonly ChatResponse[], meta: CompletionMeta, n: number): ChatCompletion {
  return { ...meta, object: "chat.completion", choices: responses.map(toChatChoice), usage: usageOf(responses, n) };
}

type ChunkChoice = ChatCompletionChunk["choices"][number];

/**
 * One choice's chunk choices: the first delta carries the role, then content / reasoning / tool
 * calls, then an empty delta with the finish reason. Its final response goes to `finals[index]`.
 */
async function* chatChunkChoices(chunks: AsyncIterable<ChatResponse>, index: number, finals: ChatResponse[]): AsyncGenerator<ChunkChoice> {
  let first = true;
  let toolCallCount = 0;
  for await (const chunk of chunks) {
    const { content, thinking, tool_calls } = chunk.message;
    const delta: ChunkChoice["delta"] = first ? { role: "assistant", content } : {};
    if (content) delta.content = content;
    if (thinking) delta.reasoning = thinking;
    if (tool_calls?.length) {
      delta.tool_calls = toOpenAIToolCalls(tool_calls).map((call, i) => ({ index: toolCallCount + i, ...call }));
      toolCallCount += tool_calls.length;
    }
    if (Object.keys(delta).length > 0) {
      yield { index, delta, finish_reason: null, logprobs: toOpenAILogprobs(chunk.logprobs) };
    }
    first = false;
    if (chunk.done) {
      finals[index] = chunk;
      yield { index, delta: {}, finish_reason: finishReason(chunk.done_reason, toolCallCount > 0) };
    }
  }
}

/** How a multi-choice stream is framed: its choices' streams, and what ends it. */
interface ChoiceStreams<T> {
  streams: readonly AsyncIterable<T>[];
  /** Choices per prompt. */
  n: number;
  /** Cancels the choices still running when the stream ends early. */
  stop: () => void;
  /** Receives the request's usage once every choice is done. */
  onUsage: (usage: OpenAIUsage) => void;
}

/**
 * SSE chunks of every choice as each comes (one choice per chunk, with its index), then (with
 * include_usage) a usage chunk without choices.
 */
export async function* toChatCompletionChunks(
  choices: ChoiceStreams<ChatResponse>,
  meta: CompletionMeta,
  includeUsage: boolean,
): AsyncGenerator<ChatCompletionChunk> {
  const frame = (choices: ChunkChoice[], usage: OpenAIUsage | null = null): ChatCompletionChunk => ({
    ...meta,
    object: "chat.completion.chunk",
    choices,
    ...(includeUsage ? { usage } : {}),
  });
  const finals: ChatResponse[] = [];
  const each = choices.streams.map((s, i) => chatChunkChoices(s, i, finals));
  for await (const choice of mergeStreams(each, choices.stop)) yield frame([choice]);
  const usage = usageOf(finals, choices.n);
  choices.onUsage(usage);
  if (includeUsage) yield frame([], usage);
}

type CompletionChoice = Completion["choices"][number];

function toCompletionChoice(response: GenerateResponse, index: number, echoed: string): CompletionChoice {
  return {
    index,
    text: echoed + response.response,
    finish_reason: finishReason(response.done_reason, false),
    logprobs: toCompletionLogprobs(response.logprobs, echoed.length),
  };
}

/** One text_completion of every choice, in index order; `echoed[i]` is choice i's echoed prompt. */
export function toCompletion(responses: readonly GenerateResponse[], meta: CompletionMeta, n: number, echoed: readonly string[]): Completion {
  return {
    ...meta,
    object: "text_completion",
    choices: responses.map((r, i) => toCompletionChoice(r, i, echoed[i]!)),
    usage: usageOf(responses, n),
  };
}

/** One choice's pieces (the echoed prompt first), then its finish. Its final response goes to `finals[index]`. */
async function* completionChunkChoices(
  chunks: AsyncIterable<GenerateResponse>,
  index: number,
  echoed: string,
  finals: GenerateResponse[],
): AsyncGenerator<CompletionChoice> {
  let textLength = 0;
  let pendingEcho = echoed;
  for await (const chunk of chunks) {
    const text = pendingEcho + chunk.response;
    if (text !== "") {
      const logprobs = toCompletionLogprobs(chunk.logprobs, textLength + pendingEcho.length);
      yield { index, text, finish_reason: null, logprobs };
    }
    textLength += text.length;
    pendingEcho = "";
    if (chunk.done) {
      finals[index] = chunk;
      yield { index, text: "", finish_reason: finishReason(chunk.done_reason, false), logprobs: null };
    }
  }
}

export async function* toCompletionChunks(
  choices: ChoiceStreams<GenerateResponse>,
  meta: CompletionMeta,
  echoed: readonly string[],
  includeUsage: boolean,
): AsyncGenerator<Completion> {
  const frame = (choices: Completion["choices"], usage: OpenAIUsage | null = null): Completion => ({
    ...meta,
    object: "text_completion",
    choices,
    ...(includeUsage ? { usage } : {}),
  });
  const finals: GenerateResponse[] = [];
  const each = choices.streams.map((s, i) => completionChunkChoices(s, i, echoed[i]!, finals));
  for await (const choice of mergeStreams(each, choices.stop)) yield frame([choice]);
  const usage = usageOf(finals, choices.n);
  choices.onUsage(usage);
  if (includeUsage) yield frame([], usage);
}

/** OpenAI's base64 embeddings are little-endian float32 arrays. */
function float32Base64(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((value, i) => bytes.writeFloatLE(value, i * 4));
  return bytes.toString("base64");
}

/** The access log's token counts of a request of several choices. */
function noteOpenAIUsage(res: Parameters<RequestHandler>[1], usage: OpenAIUsage): void {
  noteUsage(res, { prompt_eval_count: usage.prompt_tokens, eval_count: usage.completion_tokens });
}

// ---------------------------------------------------------------------------------------------
// Handlers

export function openAIHandlers({ engine, config }: ServerDeps) {
  const readChatRequest = chatRequestReader(config);
  const handlers = {
    chatCompletions: async (req, res) => {
      const { body, signal, request } = await readChatRequest(ChatCompletionRequestSchema, toChatRequest, req, res);
      const n = body.n ?? 1;
      const started = await startAll(requestChoices([request], n), (r, init) => engine.chat(r, init), signal);
      const meta = completionMeta("chatcmpl", body.model);
      if (!request.stream) {
        const completion = toChatCompletion(started.results.map(expectSingle), meta, n);
        noteOpenAIUsage(res, completion.usage);
        res.json(completion);
        return;
      }
      const includeUsage = body.stream_options?.include_usage === true;
      const streams = { streams: started.results.map(expectStream), n, stop: started.cancel, onUsage: (u: OpenAIUsage) => noteOpenAIUsage(res, u) };
      await writeStream(res, "sse", toChatCompletionChunks(streams, meta, includeUsage));
    },

    completions: async (req, res) => {
      const body = parseRequest(CompletionRequestSchema, req.body);
      notes(res).model = body.model;
      const requests = toGenerateRequests(body);
      const n = body.n ?? 1;
      const choices = requestChoices(requests, n);
      const started = await startAll(choices, (r, init) => engine.generate(r, init), abortOnDisconnect(res));
      const meta = completionMeta("cmpl", body.model);
      const echoed = choices.map((c) => (body.echo ? c.request.prompt ?? "" : ""));
      if (body.stream !== true) {
        const responses = started.results.map(expectSingle);
        noteOpenAIUsage(res, usageOf(responses, n));
        res.json(toCompletion(responses, meta, n, echoed));
        return;
      }
      const includeUsage = body.stream_options?.include_usage === true;
      const streams = { streams: started.results.map(expectStream), n, stop: started.cancel, onUsage: (u: OpenAIUsage) => noteOpenAIUsage(res, u) };
      await writeStream(res, "sse", toCompletionChunks(streams, meta, echoed, includeUsage));
    },

    listModels: async (_req, res) => {
      const { models } = await engine.list();
      const data: OpenAIModel[] = models.map((m) => ({
        id: m.name,
        object: "model",
        created: unixSeconds(new Date(m.modified_at)),
        owned_by: OWNED_BY,
      }));
      res.json({ object: "list", data });
    },

    getModel: async (req, res) => {
      // The `*model` wildcard keeps names such as "hf.co/user/repo:Q4_K_M" whole.
      const segments = req.params.model as unknown as string[];
      const name = segments.join("/");
      notes(res).model = name;
      const shown = await engine.show({ model: name });
      const model: OpenAIModel = {
        id: name,
        object: "model",
        created: unixSeconds(new Date(shown.modified_at)),
        owned_by: OWNED_BY,
      };
      res.json(model);
    },

    embeddings: async (req, res) => {
      const body = parseRequest(OpenAIEmbeddingRequestSchema, req.body);
      notes(res).model = body.model;
      const response = await engine.embed(
        { model: body.model, input: body.input, truncate: true, ...(body.dimensions ? { dimensions: body.dimensions } : {}) },
        { signal: abortOnDisconnect(res) },
      );
      noteUsage(res, response);
      const tokens = response.prompt_eval_count ?? 0;
      const reply: OpenAIEmbeddingResponse = {
        object: "list",
        data: response.embeddings.map((vector, index) => ({
          object: "embedding",
          embedding: body.encoding_format === "base64" ? float32Base64(vector) : vector,
          index,
        })),
        model: body.model,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      };
      res.json(reply);
    },
  } satisfies Record<string, RequestHandler>;
  return handlers;
}
