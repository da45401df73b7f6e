// Ollama's response shapes for a running generation: text chunks with their logprobs, the final
// line with done_reason and timings, streamed (one item per event) or collected into one answer.
// The engine and the route tests' fake engine both shape their token events here.
import type { ChatRequest, ChatResponse, GenerateRequest, GenerateResponse, Logprob } from "../api/ollama.js";
import { chatAnswerParser, type ChatOutput, type ChatOutputOptions } from "../chat/output.js";
import type { SequenceEvent, SequenceStats, TokenLogprobs } from "./sequence.js";

/** A started generation as its responses see it: its events and the clocks around them. */
export interface Generation {
  events: AsyncIterable<SequenceEvent>;
  /** When the request arrived (process.hrtime.bigint()). */
  startedAt: bigint;
  /** Nanoseconds this request waited for its model to load. */
  loadNs: number;
  /** When the sequence started running; read at the end, since the scheduler admits it later. */
  admittedAt(): bigint | undefined;
}

type DoneEvent = Extract<SequenceEvent, { type: "done" }>;

/** A generate answer: one response, or the stream of chunks when `stream: true`. */
export async function generateResponses(
  req: Pick<GenerateRequest, "model" | "stream" | "raw">,
  generation: Generation,
): Promise<GenerateResponse | AsyncIterable<GenerateResponse>> {
  const final = ({ stats, reason, stopSequence }: DoneEvent): GenerateResponse => ({
    model: req.model, created_at: isoNow(), response: "", done: true, done_reason: reason,
    ...stoppedBy(stopSequence),
    ...(req.raw ? {} : { context: stats.tokens }),
    ...timings(generation, stats),
  });
  if (req.stream === true) {
    return stream<GenerateResponse>(
      generation,
      (text, logprobs) => ({ model: req.model, created_at: isoNow(), response: text, done: false, ...ollamaLogprobs(logprobs) }),
      final,
    );
  }
  let response = "";
  const logprobs: TokenLogprobs[] = [];
  const end = await collect(generation, (text, lp) => {
    response += text;
    logprobs.push(...lp);
  });
  return { ...final(end), response, ...ollamaLogprobs(logprobs) };
}

/** A chat answer, its text split into thinking, content and tool calls by the chat output parser. */
export async function chatResponses(
  req: Pick<ChatRequest, "model" | "stream">,
  generation: Generation,
  outputOptions: ChatOutputOptions,
): Promise<ChatResponse | AsyncIterable<ChatResponse>> {
  const output = chatAnswerParser(outputOptions);
  const final = ({ stats, reason, stopSequence }: DoneEvent, message: ChatResponse["message"]): ChatResponse => ({
    model: req.model, created_at: isoNow(), message, done: true, done_reason: reason, ...stoppedBy(stopSequence), ...timings(generation, stats),
  });
  if (req.stream === true) {
    return stream<ChatResponse>(
      generation,
      async (text, logprobs) => ({ model: req.model, created_at: isoNow(), message: assistant(await output.push(text)), done: false, ...ollamaLogprobs(logprobs) }),
      async (done) => final(done, assistant(await output.finish())),
    );
  }
  const parts: ChatOutput[] = [];
  const logprobs: TokenLogprobs[] = [];
  const end = await collect(generation, async (text, lp) => {
    parts.push(await output.push(text));
    logprobs.push(...lp);
  });
  const joined = [...parts, await output.finish()].reduce((a, b) => ({
    thinking: a.thinking + b.thinking, content: a.content + b.content, toolCalls: [...a.toolCalls, ...b.toolCalls],
  }));
  return { ...final(end, assistant(joined)), ...ollamaLogprobs(logprobs) };
}

/** The answer to a request without a prompt, which only loads (or, with keep_alive 0, unloads) the model. */
export function generateLoadResponse(
  req: Pick<GenerateRequest, "model" | "stream">,
  reason: "load" | "unload",
): GenerateResponse | AsyncIterable<GenerateResponse> {
  const response: GenerateResponse = { model: req.model, created_at: isoNow(), response: "", done: true, done_reason: reason };
  return req.stream === true ? single(response) : response;
}

/** The chat counterpart of generateLoadResponse, for a request without messages. */
export function chatLoadResponse(
  req: Pick<ChatRequest, "model" | "stream">,
  reason: "load" | "unload",
): ChatResponse | AsyncIterable<ChatResponse> {
  const response: ChatResponse = {
    model: req.model, created_at: isoNow(), message: { role: "assistant", content: "" }, done: true, done_reason: reason,
  };
  return req.stream === true ? single(response) : response;
}

/** vllama's `stop_sequence`: which of `options.stop` ended the answer, when one did (Anthropic's stop_sequence). */
function stoppedBy(stopSequence: string | undefined): { stop_sequence?: string } {
  return stopSequence === undefined ? {} : { stop_sequence: stopSequence };
}

/** Nanoseconds from a to b (0 if b is not later). */
export function nsBetween(a: bigint, b: bigint): number {
  return Number(b > a ? b - a : 0n);
}

function assistant(o: ChatOutput): ChatResponse["message"] {
  return {
    role: "assistant", content: o.content,
    ...(o.thinking ? { thinking: o.thinking } : {}),
    ...(o.toolCalls.length ? { tool_calls: o.toolCalls } : {}),
  };
}

async function* stream<T>(
  generation: Generation,
  chunk: (text: string, logprobs: TokenLogprobs[]) => T | Promise<T>,
  final: (done: DoneEvent) => T | Promise<T>,
): AsyncIterable<T> {
  for await (const event of generation.events) {
    yield event.type === "text" ? await chunk(event.text, event.logprobs) : await final(event);
  }
}

async function collect(generation: Generation, onText: (text: string, logprobs: TokenLogprobs[]) => void | Promise<void>): Promise<DoneEvent> {
  for await (const event of generation.events) {
    if (event.type === "done") return event;
    await onText(event.text, event.logprobs);
  }
  throw new Error("generation ended without a final event");
}

function timings(generation: Generation, stats: SequenceStats) {
  const admitted = generation.admittedAt() ?? stats.firstTokenAt;
  return {
    total_duration: nsBetween(generation.startedAt, process.hrtime.bigint()),
    load_duration: generation.loadNs,
    prompt_eval_count: stats.promptTokens,
    prompt_eval_duration: nsBetween(admitted, stats.firstTokenAt),
    eval_count: stats.generatedTokens,
    eval_duration: nsBetween(stats.firstTokenAt, stats.finishedAt),
  };
}

function ollamaLogprobs(logprobs: TokenLogprobs[]): { logprobs?: Logprob[] } {
  if (logprobs.length === 0) return {};
  return {
    logprobs: logprobs.map((l) => ({
      token: l.token, logprob: l.logprob, bytes: l.bytes,
      ...(l.top.length ? { top_logprobs: l.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })) } : {}),
    })),
  };
}

function isoNow(): string {
  return new Date().toISOString();
}

async function* single<T>(item: T): AsyncIterable<T> {
  yield item;
}
