// The in-process engine: the same calls the HTTP server makes, with Ollama's request and
// response shapes (src/api/schemas.ts). `new Engine()` in a Node app gives the server's engine.
import { existsSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { BadRequestError } from "../api/errors.js";
import type { EngineService, RequestInit } from "../api/engine-contract.js";
import {
  ChatRequestSchema, CopyRequestSchema, CreateRequestSchema, DeleteRequestSchema, DetokenizeRequestSchema,
  EmbeddingsRequestSchema, EmbedRequestSchema, GenerateRequestSchema, parseKeepAlive, parseRequest,
  PullRequestSchema, PushRequestSchema, resolveOptions, ShowRequestSchema, TokenizeRequestSchema,
  type ChatRequest, type ChatResponse, type CopyRequest, type CreateRequest, type DeleteRequest,
  type DetokenizeRequest, type DetokenizeResponse, type EmbeddingsRequest, type EmbeddingsResponse,
  type EmbedRequest, type EmbedResponse, type GenerateRequest, type GenerateResponse, type Logprob,
  type Options, type ProgressResponse, type PsResponse, type PullRequest, type PushRequest,
  type ShowRequest, type ShowResponse, type TagsResponse, type TokenizeRequest, type TokenizeResponse, type ToolCall,
} from "../api/schemas.js";
import { ChatTemplate } from "../chat/template.js";
import { ChatOutputParser, type ChatOutput } from "../chat/output.js";
import { detectToolCallFormat } from "../chat/tool-calls.js";
import { pull as registryPull, push as registryPush } from "../models/registry.js";
import { defaultModelsDir, ModelStore } from "../models/store.js";
import type { ModelParameters } from "../models/types.js";
import { initBackend, type NativeModel } from "../native/index.js";
import { AsyncQueue } from "../util/async-queue.js";
import { renderPrometheus } from "./metrics.js";
import { ModelPool, type Lease } from "./model-pool.js";
import type { ModelRunner, RunnerOptions } from "./model-runner.js";
import { samplerParams, sequenceLimits } from "./sampling.js";
import { EngineOptionsSchema, type EngineOptions } from "./options.js";
import { Sequence, type SequenceEvent, type SequenceStats, type TokenLogprobs } from "./sequence.js";

export type { EngineOptions } from "./options.js";

const VERSION = "0.1.0";

/** A model as a request names it: a store name or a GGUF path, with its Modelfile settings. */
interface ModelRef {
  name: string;
  path: string;
  digest: string;
  size: number;
  template?: string;
  system?: string;
  parameters: Partial<Options>;
  messages: Array<{ role: string; content: string }>;
}

interface Completion {
  lease: Lease;
  model: ModelRef;
  seq: Sequence;
  startedAt: bigint;
  keepAliveMs: number;
}

function isoNow(): string {
  return new Date().toISOString();
}

function nsBetween(a: bigint, b: bigint): number {
  return Number(b > a ? b - a : 0n);
}

export class Engine implements EngineService {
  readonly version = VERSION;
  readonly store: ModelStore;
  private readonly options: EngineOptions;
  private readonly pool: ModelPool;

  constructor(options: Partial<EngineOptions> = {}) {
    this.options = parseRequest(EngineOptionsSchema, options);
    this.store = new ModelStore(this.options.modelsDir ?? defaultModelsDir());
    const o = this.options;
    const runnerOptions: RunnerOptions = {
      kvCells: o.kvCells ?? Math.min(Math.max(o.contextLength, o.contextLength * Math.ceil(o.parallel / 4)), 65536),
      parallel: o.parallel,
      maxQueue: o.maxQueue,
      batchSize: o.batchSize,
      flashAttention: o.flashAttention,
      kvCacheType: o.kvCacheType,
      prefixCache: o.prefixCache,
      gpu: o.gpu,
      threads: o.threads,
    };
    this.pool = new ModelPool(o.maxLoadedModels, runnerOptions);
  }

  backend() {
    const { backend, devices } = initBackend(this.options.gpu);
    return { backend, devices };
  }

  // ---------------------------------------------------------------------------------------------
  // Generation

  // As in Ollama's JS client, the in-process default is one response; `stream: true` streams.
  // (The HTTP layer passes Ollama's HTTP default, stream: true, explicitly.)
  generate(req: GenerateRequest & { stream: true }, init?: RequestInit): Promise<AsyncIterable<GenerateResponse>>;
  generate(req: GenerateRequest & { stream?: false }, init?: RequestInit): Promise<GenerateResponse>;
  generate(req: GenerateRequest, init?: RequestInit): Promise<GenerateResponse | AsyncIterable<GenerateResponse>>;
  async generate(input: GenerateRequest, init: RequestInit = {}): Promise<GenerateResponse | AsyncIterable<GenerateResponse>> {
    const req = parseRequest(GenerateRequestSchema, input);
    const model = await this.resolveModel(req.model);
    const keepAliveMs = parseKeepAlive(req.keep_alive, this.options.keepAliveMs);
    if (!req.prompt && !req.suffix && !req.context?.length) {
      const done = await this.loadOrUnload(model, keepAliveMs);
      const chunk: GenerateResponse = { model: req.model, created_at: isoNow(), response: "", done: true, done_reason: done };
      return req.stream === true ? single(chunk) : chunk;
    }
    if (req.suffix !== undefined) throw new BadRequestError(`${req.model} does not support insert`);
    if (req.images?.length) throw new BadRequestError(`${req.model} does not support images`);
    const completion = await this.startCompletion(model, keepAliveMs, req, init, (runner) => {
      const prompt = req.raw || !(req.template ?? model.template) ? req.prompt ?? "" : this.renderGenerate(req, model);
      const context = req.context ?? [];
      return [...context, ...this.tokenizePrompt(runner.model, prompt, context.length === 0)];
    });
    const toChunk = (text: string, logprobs: TokenLogprobs[]): GenerateResponse => ({
      model: req.model, created_at: isoNow(), response: text, done: false, ...ollamaLogprobs(logprobs),
    });
    const final = (stats: SequenceStats, reason: "stop" | "length"): GenerateResponse => ({
      model: req.model, created_at: isoNow(), response: "", done: true, done_reason: reason,
      ...(req.raw ? {} : { context: stats.tokens }),
      ...this.timings(completion, stats),
    });
    if (req.stream === true) return this.streamCompletion<GenerateResponse>(completion, toChunk, final);
    let response = "";
    const logprobs: TokenLogprobs[] = [];
    const end = await this.collect(completion, (text, lp) => {
      response += text;
      logprobs.push(...lp);
    });
    return { ...final(end.stats, end.reason), response, ...ollamaLogprobs(logprobs) };
  }

  chat(req: ChatRequest & { stream: true }, init?: RequestInit): Promise<AsyncIterable<ChatResponse>>;
  chat(req: ChatRequest & { stream?: false }, init?: RequestInit): Promise<ChatResponse>;
  chat(req: ChatRequest, init?: RequestInit): Promise<ChatResponse | AsyncIterable<ChatResponse>>;
  async chat(input: ChatRequest, init: RequestInit = {}): Promise<ChatResponse | AsyncIterable<ChatResponse>> {
    const req = parseRequest(ChatRequestSchema, input);
    const model = await this.resolveModel(req.model);
    const keepAliveMs = parseKeepAlive(req.keep_alive, this.options.keepAliveMs);
    if (req.messages.length === 0) {
      const done = await this.loadOrUnload(model, keepAliveMs);
      const chunk: ChatResponse = { model: req.model, created_at: isoNow(), message: { role: "assistant", content: "" }, done: true, done_reason: done };
      return req.stream === true ? single(chunk) : chunk;
    }
    if (req.messages.some((m) => m.images?.length)) throw new BadRequestError(`${req.model} does not support images`);
    let template: ChatTemplate | undefined;
    let startsInThinking = false;
    const completion = await this.startCompletion(model, keepAliveMs, req, init, (runner) => {
      template = ChatTemplate.cached(model.template ?? runner.model.info.chatTemplate);
      if (req.tools?.length && !template.supportsTools) throw new BadRequestError(`${req.model} does not support tools`);
      const messages = [...this.systemMessages(model, req.messages), ...model.messages, ...req.messages] as ChatRequest["messages"];
      const info = runner.model.info;
      const piece = (id: number) => (id >= 0 ? Buffer.from(runner.model.tokenBytes(id, true)).toString("utf8") : "");
      const rendered = template.render({
        messages, tools: req.tools, think: req.think, addGenerationPrompt: true, bosToken: piece(info.bos), eosToken: piece(info.eos),
      });
      startsInThinking = rendered.trimEnd().endsWith("<think>");
      return this.tokenizePrompt(runner.model, rendered, !info.addBos || !rendered.startsWith(piece(info.bos)));
    });
    const output = new ChatOutputParser({
      think: req.think !== undefined && req.think !== false,
      startsInThinking,
      toolFormat: req.tools?.length ? detectToolCallFormat(template!.source) : undefined,
    });
    const assistant = (o: ChatOutput, toolCalls: ToolCall[] = []): ChatResponse["message"] => ({
      role: "assistant", content: o.content,
      ...(o.thinking ? { thinking: o.thinking } : {}),
      ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
    });
    const final = (stats: SequenceStats, reason: "stop" | "length", message: ChatResponse["message"]): ChatResponse => ({
      model: req.model, created_at: isoNow(), message, done: true, done_reason: reason, ...this.timings(completion, stats),
    });
    if (req.stream !== true) {
      const parts: ChatOutput[] = [];
      const logprobs: TokenLogprobs[] = [];
      const end = await this.collect(completion, (t, lp) => {
        parts.push(output.push(t));
        logprobs.push(...lp);
      });
      const last = output.finish();
      const joined = [...parts, last].reduce((a, b) => ({ thinking: a.thinking + b.thinking, content: a.content + b.content }));
      return { ...final(end.stats, end.reason, assistant(joined, last.toolCalls)), ...ollamaLogprobs(logprobs) };
    }
    return this.streamCompletion<ChatResponse>(
      completion,
      (text, logprobs) => ({ model: req.model, created_at: isoNow(), message: assistant(output.push(text)), done: false, ...ollamaLogprobs(logprobs) }),
      (stats, reason) => {
        const last = output.finish();
        return final(stats, reason, assistant(last, last.toolCalls));
      },
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Embeddings and tokens

  async embed(input: EmbedRequest, init: RequestInit = {}): Promise<EmbedResponse> {
    const req = parseRequest(EmbedRequestSchema, input);
    const started = process.hrtime.bigint();
    const inputs = req.input === undefined ? [] : typeof req.input === "string" ? [req.input] : req.input;
    const { vectors, loadNs, promptTokens } = await this.embedTexts(req.model, inputs, req.truncate !== false, req.keep_alive, init);
    const embeddings = vectors.map((v) => normalize(req.dimensions ? v.subarray(0, req.dimensions) : v));
    return {
      model: req.model, embeddings,
      total_duration: nsBetween(started, process.hrtime.bigint()), load_duration: loadNs, prompt_eval_count: promptTokens,
    };
  }

  async embeddings(input: EmbeddingsRequest, init: RequestInit = {}): Promise<EmbeddingsResponse> {
    const req = parseRequest(EmbeddingsRequestSchema, input);
    if (!req.prompt) return { embedding: [] };
    const { vectors } = await this.embedTexts(req.model, [req.prompt], true, req.keep_alive, init);
    return { embedding: [...vectors[0]] };
  }

  async tokenize(input: TokenizeRequest): Promise<TokenizeResponse> {
    const req = parseRequest(TokenizeRequestSchema, input);
    return this.withModel(req.model, undefined, (lease) => ({ tokens: [...lease.runner.model.tokenize(req.content, false, true)] }));
  }

  async detokenize(input: DetokenizeRequest): Promise<DetokenizeResponse> {
    const req = parseRequest(DetokenizeRequestSchema, input);
    return this.withModel(req.model, undefined, (lease) => {
      const vocab = lease.runner.model.info.vocabSize;
      const bad = req.tokens.find((t) => t < 0 || t >= vocab);
      if (bad !== undefined) throw new BadRequestError(`invalid tokens: token id ${bad} is out of range [0, ${vocab})`);
      return { content: lease.runner.model.detokenize(Int32Array.from(req.tokens), false, true) };
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Models

  async ps(): Promise<PsResponse> {
    const loaded = this.pool.loaded();
    return {
      models: await Promise.all(loaded.map(async (m) => {
        const details = await this.store.resolve(m.name).then((r) => r.details, () => undefined);
        return {
          name: m.name, model: m.name, size: m.size, digest: m.digest,
          details: details ?? { parent_model: "", format: "gguf", family: m.runner.model.info.architecture, families: [m.runner.model.info.architecture], parameter_size: "", quantization_level: "" },
          expires_at: new Date(m.expiresAt === Infinity ? Date.UTC(2318, 0, 1) : m.expiresAt).toISOString(),
          size_vram: this.backend().backend === "cuda" ? m.size : 0,
          context_length: this.options.contextLength,
        };
      })),
    };
  }

  async list(): Promise<TagsResponse> {
    return { models: await this.store.list() } as TagsResponse;
  }

  async show(input: ShowRequest): Promise<ShowResponse> {
    const req = parseRequest(ShowRequestSchema, input);
    const session = { system: req.system, options: req.options as ModelParameters | undefined };
    return (await this.store.show(req.model, req.verbose ?? false, session)) as ShowResponse;
  }

  pull(input: PullRequest, init: RequestInit = {}): AsyncIterable<ProgressResponse> {
    return progress(async (onProgress) => {
      const req = parseRequest(PullRequestSchema, input);
      await registryPull(this.store, req.model, { signal: init.signal, insecure: req.insecure }, onProgress);
    });
  }

  push(input: PushRequest, init: RequestInit = {}): AsyncIterable<ProgressResponse> {
    return progress(async (onProgress) => {
      const req = parseRequest(PushRequestSchema, input);
      await registryPush(this.store, req.model, { signal: init.signal, insecure: req.insecure }, onProgress);
    });
  }

  create(input: CreateRequest): AsyncIterable<ProgressResponse> {
    return progress(async (onProgress) => {
      const req = parseRequest(CreateRequestSchema, input);
      await this.store.create(req, onProgress);
    });
  }

  async copy(input: CopyRequest): Promise<void> {
    const req = parseRequest(CopyRequestSchema, input);
    await this.store.copy(req.source, req.destination);
  }

  async delete(input: DeleteRequest): Promise<void> {
    const req = parseRequest(DeleteRequestSchema, input);
    await this.store.delete(req.model);
  }

  hasBlob(digest: string): Promise<boolean> {
    return this.store.hasBlob(digest);
  }

  async writeBlob(digest: string, body: NodeJS.ReadableStream): Promise<boolean> {
    if (await this.store.hasBlob(digest)) return false;
    await this.store.writeBlob(digest, body as AsyncIterable<Uint8Array>);
    return true;
  }

  metrics(): string {
    return renderPrometheus(this.pool.loaded().map(({ name, runner }) => ({
      name, metrics: runner.metrics, running: runner.numRunning, waiting: runner.numWaiting, kv: runner.kvStats(),
    })));
  }

  /** Per loaded model: sequences running and waiting, KV cache cells, preemptions. */
  stats() {
    return this.pool.loaded().map(({ name, runner }) => ({
      name, running: runner.numRunning, waiting: runner.numWaiting, kv: runner.kvStats(), preemptions: runner.metrics.preemptions,
    }));
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Internals

  /** A GGUF path is used as is; anything else is a name in the model store. */
  private async resolveModel(name: string): Promise<ModelRef> {
    if (looksLikePath(name)) {
      const file = path.resolve(name.replace(/^~(?=\/)/, os.homedir()));
      if (!existsSync(file)) throw new BadRequestError(`model file '${name}' not found`);
      return { name, path: file, digest: "", size: statSync(file).size, parameters: {}, messages: [] };
    }
    const m = await this.store.resolve(name);
    return {
      name: m.name, path: m.modelPath, digest: m.digest.replace(/^sha256:/, ""), size: m.size,
      template: m.template, system: m.system, parameters: m.parameters as Partial<Options>, messages: m.messages,
    };
  }

  private acquire(model: ModelRef, keepAliveMs: number): Promise<Lease> {
    return this.pool.acquire(model, keepAliveMs);
  }

  private async withModel<T>(name: string, keepAlive: GenerateRequest["keep_alive"], fn: (lease: Lease) => T | Promise<T>): Promise<T> {
    const model = await this.resolveModel(name);
    const keepAliveMs = parseKeepAlive(keepAlive, this.options.keepAliveMs);
    const lease = await this.acquire(model, keepAliveMs);
    try {
      return await fn(lease);
    } finally {
      lease.release(keepAliveMs);
    }
  }

  private async loadOrUnload(model: ModelRef, keepAliveMs: number): Promise<"load" | "unload"> {
    if (keepAliveMs === 0) {
      await this.pool.unload(model.path);
      return "unload";
    }
    (await this.acquire(model, keepAliveMs)).release(keepAliveMs);
    return "load";
  }

  private async startCompletion(
    model: ModelRef,
    keepAliveMs: number,
    req: { options?: Partial<Options>; format?: GenerateRequest["format"]; logprobs?: boolean; top_logprobs?: number; truncate?: boolean },
    init: RequestInit,
    buildPrompt: (runner: ModelRunner) => number[],
  ): Promise<Completion> {
    const startedAt = process.hrtime.bigint();
    const lease = await this.acquire(model, keepAliveMs);
    try {
      const resolved = resolveOptions(req.options, model.parameters, this.options.contextLength);
      // A sequence never holds more tokens than the model's whole KV cache, whatever num_ctx says.
      const options = { ...resolved, num_ctx: Math.min(resolved.num_ctx, lease.runner.kvCells) };
      const prompt = fitContext(buildPrompt(lease.runner), options, req.truncate !== false);
      const params = samplerParams({ options, format: req.format, logprobs: req.logprobs, topLogprobs: req.top_logprobs });
      const seq = new Sequence(prompt, params, sequenceLimits(options), lease.runner.model);
      lease.runner.submit(seq, init.signal);
      seq.events.onSettled(() => lease.release(keepAliveMs));
      return { lease, model, seq, startedAt, keepAliveMs };
    } catch (error) {
      lease.release(keepAliveMs);
      throw error;
    }
  }

  private async *streamCompletion<T>(
    c: Completion,
    chunk: (text: string, logprobs: TokenLogprobs[]) => T,
    final: (stats: SequenceStats, reason: "stop" | "length") => T,
  ): AsyncIterable<T> {
    for await (const event of c.seq.events) {
      yield event.type === "text" ? chunk(event.text, event.logprobs) : final(event.stats, event.reason);
    }
  }

  private async collect(
    c: Completion,
    onText: (text: string, logprobs: TokenLogprobs[]) => void,
  ): Promise<Extract<SequenceEvent, { type: "done" }>> {
    for await (const event of c.seq.events) {
      if (event.type === "done") return event;
      onText(event.text, event.logprobs);
    }
    throw new Error("generation ended without a final event");
  }

  private timings(c: Completion, stats: SequenceStats) {
    const admitted = c.seq.admittedAt ?? stats.firstTokenAt;
    return {
      total_duration: nsBetween(c.startedAt, process.hrtime.bigint()),
      load_duration: c.lease.loadNs,
      prompt_eval_count: stats.promptTokens,
      prompt_eval_duration: nsBetween(admitted, stats.firstTokenAt),
      eval_count: stats.generatedTokens,
      eval_duration: nsBetween(stats.firstTokenAt, stats.finishedAt),
    };
  }

  private renderGenerate(req: GenerateRequest, model: ModelRef): string {
    const template = ChatTemplate.cached(req.template ?? model.template);
    const system = req.system ?? model.system;
    const messages = [...(system ? [{ role: "system" as const, content: system }] : []), { role: "user" as const, content: req.prompt ?? "" }];
    return template.render({ messages, addGenerationPrompt: true });
  }

  /** The model's SYSTEM applies unless the conversation brings its own system message. */
  private systemMessages(model: ModelRef, messages: ChatRequest["messages"]): ChatRequest["messages"] {
    if (!model.system || messages.some((m) => m.role === "system")) return [];
    return [{ role: "system", content: model.system }];
  }

  private tokenizePrompt(model: NativeModel, text: string, addSpecial: boolean): number[] {
    const tokens = [...model.tokenize(text, addSpecial, true)];
    if (tokens.length === 0) throw new BadRequestError("prompt is empty after tokenization");
    return tokens;
  }

  private async embedTexts(name: string, inputs: string[], truncate: boolean, keepAlive: EmbedRequest["keep_alive"], init: RequestInit) {
    if (inputs.length === 0) throw new BadRequestError("input is required");
    return this.withModel(name, keepAlive, async (lease) => {
      const runner = lease.runner;
      const limit = Math.min(runner.model.info.contextLengthTrained || Infinity, runner.embedMaxTokens);
      const tokenized = inputs.map((text, i) => {
        const tokens = [...runner.model.tokenize(text, true, false)];
        if (tokens.length === 0) throw new BadRequestError(`input[${i}] is empty`);
        if (tokens.length <= limit) return tokens;
        if (!truncate) throw new BadRequestError(`input[${i}] is ${tokens.length} tokens, longer than the context length (${limit})`);
        return tokens.slice(0, limit);
      });
      const vectors = await runner.embed(tokenized, init.signal);
      return { vectors, loadNs: lease.loadNs, promptTokens: tokenized.reduce((n, t) => n + t.length, 0) };
    });
  }
}

/**
 * A prompt longer than the context keeps its first `num_keep` tokens and its most recent ones,
 * leaving a quarter of the context (or num_predict, if smaller) to generate, as Ollama truncates.
 * With `truncate: false` it is an error.
 */
function fitContext(prompt: number[], options: { num_ctx: number; num_keep: number; num_predict: number }, truncate: boolean): number[] {
  if (prompt.length < options.num_ctx) return prompt;
  if (!truncate) throw new BadRequestError(`input length (${prompt.length} tokens) exceeds the context length (num_ctx ${options.num_ctx})`);
  const room = Math.max(1, Math.floor(options.num_ctx / 4));
  const generate = options.num_predict > 0 ? Math.min(options.num_predict, room) : room;
  const keep = Math.min(Math.max(options.num_keep, 0), Math.floor(options.num_ctx / 2));
  const tail = Math.max(1, options.num_ctx - generate - keep);
  return [...prompt.slice(0, keep), ...prompt.slice(prompt.length - tail)];
}

function looksLikePath(name: string): boolean {
  return name.endsWith(".gguf") || name.startsWith("/") || name.startsWith("./") || name.startsWith("../") || name.startsWith("~/");
}

function normalize(v: Float32Array): number[] {
  let sum = 0;
  for (const x of v) sum += x * x;
  const norm = Math.sqrt(sum) || 1;
  return Array.from(v, (x) => x / norm);
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

async function* single<T>(item: T): AsyncIterable<T> {
  yield item;
}

/** Runs a job that reports progress and turns it into an iterable ending with "success". */
function progress(job: (onProgress: (p: ProgressResponse) => void) => Promise<void>): AsyncIterable<ProgressResponse> {
  const queue = new AsyncQueue<ProgressResponse>();
  let sawSuccess = false;
  job((p) => {
    if (p.status === "success") sawSuccess = true;
    queue.push(p);
  }).then(
    () => {
      if (!sawSuccess) queue.push({ status: "success" });
      queue.end();
    },
    (error) => queue.fail(error),
  );
  return queue;
}
