// The in-process engine: the same calls the HTTP server makes, with Ollama's request and
// response shapes (src/api/ollama.ts). `new Engine()` in a Node app gives the server's engine.
// This facade validates a request, resolves its model, starts the work and hands it to the
// module that shapes the answer: prompts in src/chat/prompt.ts, responses in ./ollama-responses.ts,
// stored models in src/models/admin.ts.
import { BadRequestError } from "../api/errors.js";
import type { EngineService, RequestInit } from "../api/engine-contract.js";
import {
  ChatRequestSchema, DetokenizeRequestSchema, EmbeddingsRequestSchema, EmbedRequestSchema, GenerateRequestSchema,
  TokenizeRequestSchema, type ChatRequest, type ChatResponse, type CopyRequest, type CreateRequest,
  type DeleteRequest, type DetokenizeRequest, type DetokenizeResponse, type EmbeddingsRequest,
  type EmbeddingsResponse, type EmbedRequest, type EmbedResponse, type GenerateRequest, type GenerateResponse,
  type ProgressResponse, type PsResponse, type PullRequest, type PushRequest, type ShowRequest, type ShowResponse,
  type TagsResponse, type TokenizeRequest, type TokenizeResponse,
} from "../api/ollama.js";
import { parseRequest } from "../api/validate.js";
import { cappedNumPredict, parseKeepAlive, resolveLoadSettings, resolveOptions, type LoadSettings } from "./options.js";
import { buildFimPrompt } from "../chat/fill-in-middle.js";
import { withToolChoice } from "../chat/tool-choice.js";
import { buildChatPrompt, buildGeneratePrompt, forcedCallFormat, renderChatPrompt, renderGeneratePrompt, type ChatPrompt } from "../chat/prompt.js";
import { KvEventPublisher } from "../kv-events/publisher.js";
import { ModelAdmin } from "../models/admin.js";
import { resolveModelRef, type ModelRef } from "../models/model-ref.js";
import { DamagedModelError, defaultModelsDir, ModelStore } from "../models/store.js";
import { initBackend, tokenizeText, type NativeModel } from "../native/index.js";
import type { MetricsSnapshot } from "../api/metrics.js";
import { embedTexts, normalize, type Embedded } from "./embeddings.js";
import { renderPrometheus } from "./metrics.js";
import { metricsSnapshot, type LoadedModelMetrics } from "./metrics-snapshot.js";
import { BLOCK_SIZE } from "./kv-manager.js";
import { ModelPool, type Lease } from "./model-pool.js";
import { checkJsonSchema } from "./json-schema-check.js";
import type { MediaSpan } from "./media.js";
import type { ModelRunner, RpcWorkerShare } from "./model-runner.js";
import {
  chatLoadResponse, chatResponses, generateLoadResponse, generateResponses, nsBetween, type Generation,
} from "./ollama-responses.js";
import { formatGrammar, samplerParams, sequenceLimits } from "./sampling.js";
import { EngineOptionsSchema, type EngineOptions } from "./options.js";
import { Sequence, type Vocabulary } from "./sequence.js";

export type { EngineOptions } from "./options.js";

const VERSION = "0.1.0";

export interface EngineHooks {
  /** One line per event worth an operator's eye (a model loaded, with its KV cache). */
  log?: (message: string) => void;
}

/** What every request that uses a model names: the model, its keep-alive and options. */
type ModelRequest = Pick<GenerateRequest, "model" | "keep_alive" | "options">;

/** What a generation request asks of its sequence besides the prompt. */
type GenerationSettings = Pick<GenerateRequest, "options" | "format" | "logprobs" | "top_logprobs" | "truncate">;

export class Engine implements EngineService {
  readonly version = VERSION;
  readonly store: ModelStore;
  private readonly admin: ModelAdmin;
  private readonly options: EngineOptions;
  private readonly pool: ModelPool;

  constructor(options: Partial<EngineOptions> = {}, hooks: EngineHooks = {}) {
    this.options = parseRequest(EngineOptionsSchema, options);
    this.store = new ModelStore(this.options.modelsDir ?? defaultModelsDir());
    this.admin = new ModelAdmin(this.store);
    const o = this.options;
    const kvEvents = o.kvEventsEndpoint === undefined ? undefined : KvEventPublisher.open(o.kvEventsEndpoint, o.kvEventsPod, BLOCK_SIZE);
    // A bad endpoint fails each model load with its message; nothing is left unhandled meanwhile.
    kvEvents?.catch(() => {});
    this.pool = new ModelPool(o.maxLoadedModels, {
      kvCells: o.kvCells,
      contextLength: o.contextLength,
      memoryShare: o.memoryShare,
      parallel: o.parallel,
      maxQueue: o.maxQueue,
      flashAttention: o.flashAttention,
      kvCacheType: o.kvCacheType,
      prefixCache: o.prefixCache,
      gpu: o.gpu,
      rpc: o.rpc,
      rpcTimeoutMs: o.rpcTimeoutMs,
    }, (name, runner) => hooks.log?.(describeLoaded(name, runner)), kvEvents);
  }

  fullQueues(): string[] {
    return this.pool.loaded().flatMap(({ name, runner }) => (runner.queueFull ? [name] : []));
  }

  /** The RPC workers every model's layers are spread over (engine option `rpc`). */
  rpcWorkers(): string[] {
    return this.options.rpc;
  }

  backend() {
    const { backend, devices, cpuBackendFile } = initBackend(this.options.gpu);
    return { backend, devices, cpuBackendFile };
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
      return generateLoadResponse(req, await this.loadOrUnload(model, req.options, keepAliveMs));
    }
    const images = req.images ?? [];
    const { generation } = await this.startGeneration(model, keepAliveMs, req, init, async (runner, options) => {
      if (req.suffix !== undefined) {
        if (images.length) throw new BadRequestError("images cannot be combined with suffix");
        return { tokens: await buildInsertPrompt(req, runner.model, options) };
      }
      if (images.length === 0) return { tokens: await buildGeneratePrompt(req, model, runner.model) };
      const { text, addSpecial } = renderGeneratePrompt(req, model, runner.projector?.marker);
      const prompt = await runner.tokenizeWithMedia(req.model, text, images.map(decodeImage), addSpecial);
      const context = req.context ?? [];
      return { tokens: [...context, ...prompt.tokens], media: prompt.media.map((m) => ({ ...m, start: m.start + context.length })) };
    });
    return generateResponses(req, generation);
  }

  chat(req: ChatRequest & { stream: true }, init?: RequestInit): Promise<AsyncIterable<ChatResponse>>;
  chat(req: ChatRequest & { stream?: false }, init?: RequestInit): Promise<ChatResponse>;
  chat(req: ChatRequest, init?: RequestInit): Promise<ChatResponse | AsyncIterable<ChatResponse>>;
  async chat(input: ChatRequest, init: RequestInit = {}): Promise<ChatResponse | AsyncIterable<ChatResponse>> {
    const req = withToolChoice(parseRequest(ChatRequestSchema, input));
    req.tools?.forEach((tool, i) => checkJsonSchema(tool.function.parameters ?? {}, `tools[${i}].function.parameters`));
    const model = await this.resolveModel(req.model);
    const keepAliveMs = parseKeepAlive(req.keep_alive, this.options.keepAliveMs);
    if (req.messages.length === 0) return chatLoadResponse(req, await this.loadOrUnload(model, req.options, keepAliveMs));
    const images = req.messages.flatMap((m) => m.images ?? []);
    const { generation, prompt } = await this.startGeneration(model, keepAliveMs, req, init, async (runner) => {
      if (images.length === 0) return await buildChatPrompt(req, model, runner.model);
      const { text, addSpecial, output } = await renderChatPrompt(req, model, runner.model, runner.projector?.marker);
      const format = forcedCallFormat(req);
      return { ...(await runner.tokenizeWithMedia(req.model, text, images.map(decodeImage), addSpecial)), output, ...(format ? { format } : {}) };
    });
    return chatResponses(req, generation, prompt.output);
  }

  // ---------------------------------------------------------------------------------------------
  // Embeddings and tokens

  async embed(input: EmbedRequest, init: RequestInit = {}): Promise<EmbedResponse> {
    const req = parseRequest(EmbedRequestSchema, input);
    const started = process.hrtime.bigint();
    const inputs = req.input === undefined ? [] : typeof req.input === "string" ? [req.input] : req.input;
    const { vectors, loadNs, promptTokens } = await this.embedWithModel(req, inputs, req.truncate !== false, init);
    const embeddings = vectors.map((v) => normalize(req.dimensions ? v.subarray(0, req.dimensions) : v));
    return {
      model: req.model, embeddings,
      total_duration: nsBetween(started, process.hrtime.bigint()), load_duration: loadNs, prompt_eval_count: promptTokens,
    };
  }

  async embeddings(input: EmbeddingsRequest, init: RequestInit = {}): Promise<EmbeddingsResponse> {
    const req = parseRequest(EmbeddingsRequestSchema, input);
    if (!req.prompt) return { embedding: [] };
    const { vectors } = await this.embedWithModel(req, [req.prompt], true, init);
    return { embedding: [...vectors[0]] };
  }

  async tokenize(input: TokenizeRequest): Promise<TokenizeResponse> {
    const req = parseRequest(TokenizeRequestSchema, input);
    return this.withModel({ model: req.model, options: req.options }, async (lease) => ({ tokens: [...(await tokenizeText(lease.runner.model, req.content, false, true))] }));
  }

  /** Renders and tokenizes without generating: what a chat would evaluate, before any truncation to num_ctx. */
  async tokenizeChat(input: ChatRequest): Promise<TokenizeResponse> {
    const req = parseRequest(ChatRequestSchema, input);
    return this.withModel(req, async (lease, model) => ({ tokens: (await buildChatPrompt(req, model, lease.runner.model)).tokens }));
  }

  async detokenize(input: DetokenizeRequest): Promise<DetokenizeResponse> {
    const req = parseRequest(DetokenizeRequestSchema, input);
    return this.withModel({ model: req.model, options: req.options }, (lease) => {
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
          context_length: m.runner.contextLength,
          kv_cells: m.runner.kvCells,
          kv_bytes: m.runner.kvSizing.bytes,
          parallel: m.runner.parallel,
          ...(m.runner.rpcShares.length > 0 && { rpc_workers: m.runner.rpcShares.map(rpcWorkerFields) }),
        };
      })),
    };
  }

  list(): Promise<TagsResponse> {
    return this.admin.list();
  }

  show(req: ShowRequest): Promise<ShowResponse> {
    return this.admin.show(req);
  }

  pull(req: PullRequest, init: RequestInit = {}): AsyncIterable<ProgressResponse> {
    return this.admin.pull(req, init);
  }

  push(req: PushRequest, init: RequestInit = {}): AsyncIterable<ProgressResponse> {
    return this.admin.push(req, init);
  }

  create(req: CreateRequest): AsyncIterable<ProgressResponse> {
    return this.admin.create(req);
  }

  copy(req: CopyRequest): Promise<void> {
    return this.admin.copy(req);
  }

  delete(req: DeleteRequest): Promise<void> {
    return this.admin.delete(req);
  }

  hasBlob(digest: string): Promise<boolean> {
    return this.admin.hasBlob(digest);
  }

  writeBlob(digest: string, body: NodeJS.ReadableStream): Promise<boolean> {
    return this.admin.writeBlob(digest, body);
  }

  metrics(): string {
    return renderPrometheus(this.loadedModelMetrics());
  }

  metricsSnapshot(): MetricsSnapshot {
    return metricsSnapshot(this.loadedModelMetrics());
  }

  /** Per loaded model: sequences running and waiting, KV cache cells, preemptions, step timings. */
  stats() {
    return this.pool.loaded().map(({ name, runner }) => ({
      name, running: runner.numRunning, waiting: runner.numWaiting, kv: runner.kvStats(), preemptions: runner.metrics.preemptions, steps: { ...runner.metrics.steps },
      batchSize: runner.batchSize, imagesPrepared: runner.mediaPrepareCount, imagesEncoded: runner.encoderCache?.encodeCount ?? 0,
    }));
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Internals

  private loadedModelMetrics(): LoadedModelMetrics[] {
    return this.pool.loaded().map(({ name, size, runner }) => ({
      name, sizeBytes: size, metrics: runner.metrics, running: runner.numRunning, waiting: runner.numWaiting, kv: runner.kvStats(),
    }));
  }

  private async resolveModel(name: string): Promise<ModelRef> {
    try {
      return await resolveModelRef(this.store, name);
    } catch (error) {
      // A blob changed under a loaded model: an idle copy goes before a step reads its mapping
      // (SIGBUS once truncated), so the model created again loads fresh.
      if (error instanceof DamagedModelError && error.blobPath) await this.pool.unload(error.blobPath);
      throw error;
    }
  }

  /** The load settings a request asks of its model (BadRequestError naming a bad option). */
  private loadSettings(model: ModelRef, requestOptions: GenerateRequest["options"]): LoadSettings {
    const { backend, devices } = initBackend(this.options.gpu);
    const gpuCount = backend === "cpu" ? 0 : devices.filter((d) => d.type === "gpu").length;
    return resolveLoadSettings(requestOptions, model.parameters, this.options, gpuCount);
  }

  private acquire(model: ModelRef, requestOptions: GenerateRequest["options"], keepAliveMs: number): Promise<Lease> {
    return this.pool.acquire(model, this.loadSettings(model, requestOptions), keepAliveMs);
  }

  private async withModel<T>(req: ModelRequest, fn: (lease: Lease, model: ModelRef) => T | Promise<T>): Promise<T> {
    const model = await this.resolveModel(req.model);
    const keepAliveMs = parseKeepAlive(req.keep_alive, this.options.keepAliveMs);
    const lease = await this.acquire(model, req.options, keepAliveMs);
    try {
      return await fn(lease, model);
    } finally {
      lease.release(keepAliveMs);
    }
  }

  private async loadOrUnload(model: ModelRef, requestOptions: GenerateRequest["options"], keepAliveMs: number): Promise<"load" | "unload"> {
    if (keepAliveMs === 0) {
      await this.pool.unload(model.path);
      return "unload";
    }
    (await this.acquire(model, requestOptions, keepAliveMs)).release(keepAliveMs);
    return "load";
  }

  /**
   * Loads the model, builds the prompt with its tokenizer and submits the sequence; the model is
   * held until the sequence settles. Returns the running generation and the prompt it was built from.
   */
  private async startGeneration<P extends { tokens: number[]; media?: MediaSpan[] } & Partial<Pick<ChatPrompt, "grammar" | "format" | "preservedTokens" | "stop">>>(
    model: ModelRef,
    keepAliveMs: number,
    req: GenerationSettings,
    init: RequestInit,
    buildPrompt: (runner: ModelRunner, options: ContextOptions) => Promise<P>,
  ): Promise<{ generation: Generation; prompt: P }> {
    const startedAt = process.hrtime.bigint();
    const grammar = await formatGrammar(req.format);
    const lease = await this.acquire(model, req.options, keepAliveMs);
    try {
      // Without num_ctx a request gets the loaded model's context; a larger num_ctx got a model
      // loaded for it (model-pool.ts). A sequence never holds more tokens than the whole KV cache,
      // whatever num_ctx says: the cache is smaller where memory or the operator's kvCells made it so.
      const resolved = resolveOptions(req.options, model.parameters, lease.runner.contextLength);
      const options = {
        ...resolved,
        num_ctx: Math.min(resolved.num_ctx, lease.runner.kvCells),
        num_predict: cappedNumPredict(resolved.num_predict, this.options.maxTokens),
      };
      const prompt = await buildPrompt(lease.runner, options);
      // A prompt with images is not truncated: a cut could fall inside an image.
      const tokens = fitContext(prompt.tokens, options, req.truncate !== false && !prompt.media?.length, lease.runner.kvCells);
      const params = samplerParams({
        options, grammar: prompt.grammar ?? (await formatGrammar(prompt.format)) ?? grammar, logprobs: req.logprobs, topLogprobs: req.top_logprobs,
        vocabSize: lease.runner.model.info.vocabSize,
      });
      const vocab = withPreservedTokens(lease.runner.model, prompt.preservedTokens ?? []);
      const seq = new Sequence(tokens, params, sequenceLimits({ ...options, stop: [...options.stop, ...(prompt.stop ?? [])] }), vocab, prompt.media, init.promptGroup);
      lease.runner.submit(seq, init.signal);
      seq.events.onSettled(() => lease.release(keepAliveMs));
      return { generation: { events: seq.events, startedAt, loadNs: lease.loadNs, admittedAt: () => seq.admittedAt }, prompt };
    } catch (error) {
      lease.release(keepAliveMs);
      throw error;
    }
  }

  private async embedWithModel(req: ModelRequest, inputs: string[], truncate: boolean, init: RequestInit): Promise<Embedded & { loadNs: number }> {
    return this.withModel(req, async (lease) => ({
      ...(await embedTexts(lease.runner, inputs, truncate, init.signal)),
      loadNs: lease.loadNs,
    }));
  }
}

/** What fitting a prompt to the sequence's context needs to know. */
type ContextOptions = { num_ctx: number; num_keep: number; num_predict: number };

/**
 * A prompt longer than the context keeps its first `num_keep` tokens and its most recent ones,
 * leaving a quarter of the context (or num_predict, if smaller) to generate, as Ollama truncates.
 * With `truncate: false` it is an error, which says when the context is all the KV cache holds.
 */
function fitContext(prompt: number[], options: ContextOptions, truncate: boolean, kvCells: number): number[] {
  if (prompt.length < options.num_ctx) return prompt;
  if (!truncate) {
    const wholeCache = options.num_ctx === kvCells ? ", all the KV cache holds" : "";
    throw new BadRequestError(`input length (${prompt.length} tokens) exceeds the context length (num_ctx ${options.num_ctx}${wholeCache})`);
  }
  const keep = Math.min(Math.max(options.num_keep, 0), Math.floor(options.num_ctx / 2));
  const tail = Math.max(1, truncatedRoom(options) - keep);
  return [...prompt.slice(0, keep), ...prompt.slice(prompt.length - tail)];
}

/** The tokens a truncated prompt keeps: the context less a quarter of it (or num_predict, if smaller) to generate. */
function truncatedRoom(options: ContextOptions): number {
  const room = Math.max(1, Math.floor(options.num_ctx / 4));
  const generate = options.num_predict > 0 ? Math.min(options.num_predict, room) : room;
  return options.num_ctx - generate;
}

/** A generate request with a `suffix`: fill in the middle with the model's FIM tokens. */
function buildInsertPrompt(req: GenerateRequest, tokenizer: NativeModel, options: ContextOptions): Promise<number[]> {
  if (req.raw) throw new BadRequestError("raw mode does not support suffix");
  if (req.context?.length) throw new BadRequestError("context cannot be combined with suffix");
  return buildFimPrompt({
    model: req.model, prefix: req.prompt ?? "", suffix: req.suffix ?? "",
    numCtx: options.num_ctx, truncatedRoom: truncatedRoom(options), truncate: req.truncate !== false,
  }, tokenizer);
}

/** The model's vocabulary, with the call syntax's special tokens shown as text in the answer (as llama-server's preserved tokens are). */
function withPreservedTokens(model: NativeModel, preserved: readonly number[]): Vocabulary {
  if (preserved.length === 0) return model;
  const shown = new Set(preserved);
  return { tokenBytes: (token, special) => model.tokenBytes(token, special || shown.has(token)), isEog: (token) => model.isEog(token) };
}

function rpcWorkerFields(share: RpcWorkerShare) {
  return { endpoint: share.endpoint, model_bytes: share.modelBytes, kv_bytes: share.kvBytes, compute_bytes: share.computeBytes };
}

/** An image of a request, as its base64 (the API schemas checked the alphabet). */
function decodeImage(base64: string): Uint8Array {
  return Buffer.from(base64, "base64");
}

/** The line logged at each model load: its KV cache and what decided its size, and its weights repacked for the CPU backend's own products (native/patches). */
function describeLoaded(name: string, runner: ModelRunner): string {
  const { kvCells, bytes, sizedBy, contextLength } = runner.kvSizing;
  const gib = (bytes / 1024 ** 3).toFixed(2);
  const sequences = Math.floor(kvCells / contextLength);
  const repackedMiB = runner.model.info.weightBuffersMiB.CPU_REPACK;
  const repacked = repackedMiB ? `; ${repackedMiB.toFixed(2)} MiB of weights repacked for the CPU` : "";
  return `${name}: KV cache ${kvCells} cells (${gib} GiB, sized by ${sizedBy}) = ${sequences} sequences x ${contextLength} tokens${repacked}`;
}
