// A deterministic EngineService for route and validation tests: real validation of model names
// and capabilities, a bounded in-flight count (-> BusyError), scripted token events that honour
// the abort signal, and a record of every request and abort so tests can check the translation
// layers. Only the token source is fake: the engine's own code shapes the Ollama responses.
import { createHash } from "node:crypto";
import type { EngineService, RequestInit } from "../../src/api/engine-contract.js";
import { BadRequestError, BusyError, CancelledError, InternalError, NotFoundError } from "../../src/api/errors.js";
import type {
  Capability, ChatRequest, ChatResponse, CopyRequest, CreateRequest, DeleteRequest, DetokenizeRequest,
  DetokenizeResponse, EmbeddingsRequest, EmbeddingsResponse, EmbedRequest, EmbedResponse, GenerateRequest,
  GenerateResponse, ModelDetails, ProgressResponse, PsResponse, PullRequest, PushRequest, ShowRequest, ShowResponse,
  TagsResponse, TokenizeRequest, TokenizeResponse,
} from "../../src/api/ollama.js";
import { withToolChoice } from "../../src/chat/tool-choice.js";
import { metricsSnapshot } from "../../src/engine/metrics-snapshot.js";
import { chatResponses, generateResponses, type Generation } from "../../src/engine/ollama-responses.js";
import type { SequenceEvent, TokenLogprobs } from "../../src/engine/sequence.js";

interface FakeModel {
  capabilities: Capability[];
  modifiedAt: string;
}

/** The reply every generation produces, one piece per token. */
export const REPLY_TOKENS = ["Hello", " from", " the", " fake", " engine", "."];
export const REPLY_TEXT = REPLY_TOKENS.join("");
/** The reply when a format (JSON) is requested. */
export const JSON_REPLY_TOKENS = ['{"reply":', ' "hello"', "}"];
export const PROMPT_TOKENS = 5;
/** Ollama's `context` of every generation: scripted, not the prompt's and reply's tokens. */
const CONTEXT_TOKENS = [1, 2, 3];
export const EMBEDDING_SIZE = 8;
/** Models that the fake registry can pull. */
export const REMOTE_MODELS = ["remote-model:latest"];

const DETAILS: ModelDetails = {
  parent_model: "",
  format: "gguf",
  family: "llama",
  families: ["llama"],
  parameter_size: "110M",
  quantization_level: "Q8_0",
};

function fullName(name: string): string {
  const lower = name.toLowerCase();
  return lower.includes(":") ? lower : `${lower}:latest`;
}

function digestOf(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Deterministic pseudo-embedding of a text: hashed bytes mapped to [-1, 1). */
function rawVector(text: string, size: number): number[] {
  const hash = createHash("sha256").update(text).digest();
  return Array.from({ length: size }, (_, i) => hash[i % hash.length]! / 128 - 1);
}

function normalized(vector: number[]): number[] {
  const norm = Math.hypot(...vector);
  return vector.map((v) => v / norm);
}

export interface RecordedRequest {
  kind: "generate" | "chat" | "tokenizeChat" | "embed" | "embeddings";
  request: GenerateRequest | ChatRequest | EmbedRequest | EmbeddingsRequest;
}

export class FakeEngine implements EngineService {
  readonly version = "0.0.0-fake";
  /** Generation requests admitted at once; more get BusyError, as a full queue does. */
  maxPending = Infinity;
  /** Delay between streamed tokens, so tests can disconnect mid-stream. */
  tokenDelayMs = 0;
  /** When set, generations fail with a runner error after this many tokens. */
  failAfterTokens: number | undefined;
  readonly requests: RecordedRequest[] = [];
  /** Reasons of the abort signals that fired while a generation was running. */
  readonly aborts: unknown[] = [];
  private inFlight = 0;
  private readonly models = new Map<string, FakeModel>([
    ["fake-model:latest", { capabilities: ["completion", "tools"], modifiedAt: "2025-01-02T03:04:05.000Z" }],
    ["fake-embed:latest", { capabilities: ["embedding"], modifiedAt: "2025-01-02T03:04:05.000Z" }],
  ]);
  private readonly blobs = new Map<string, Buffer>();

  /** The chat request the engine received last (a test fails when the last one was not a chat). */
  lastChatRequest(): ChatRequest {
    const last = this.requests.at(-1);
    if (last?.kind !== "chat") throw new Error(`the last engine request was ${last?.kind ?? "none"}, not chat`);
    return last.request as ChatRequest;
  }

  // -- generation --------------------------------------------------------------------------

  async generate(req: GenerateRequest, init?: RequestInit): Promise<GenerateResponse | AsyncIterable<GenerateResponse>> {
    this.requests.push({ kind: "generate", request: req });
    this.requireCapability(req.model, "completion");
    return generateResponses(req, this.admit(req.format !== undefined ? JSON_REPLY_TOKENS : REPLY_TOKENS, req, init));
  }

  async chat(input: ChatRequest, init?: RequestInit): Promise<ChatResponse | AsyncIterable<ChatResponse>> {
    this.requests.push({ kind: "chat", request: input });
    const req = withToolChoice(input);
    const model = this.requireCapability(req.model, "completion");
    if (req.tools?.length && !model.capabilities.includes("tools")) {
      throw new BadRequestError(`${req.model} does not support tools`);
    }
    const lastUser = [...req.messages].reverse().find((m) => m.role === "user")?.content ?? "";
    // With tools offered (and no tool result yet), the fake model calls the first tool, as a Hermes model writes it.
    const callsTool = req.tools?.length && req.messages.at(-1)?.role !== "tool";
    const reply = callsTool
      ? hermesToolCall(req.tools![0]!.function.name, { query: lastUser })
      : req.format !== undefined ? JSON_REPLY_TOKENS : REPLY_TOKENS;
    const output = { think: false, startsInThinking: false, toolFormat: req.tools?.length ? ("hermes" as const) : undefined, oneToolCall: req.parallel_tool_calls === false };
    return chatResponses(req, this.admit(reply, req, init), output);
  }

  /**
   * Admits a request (or refuses it when full) and returns its generation: the scripted reply as
   * a sequence's events, cut by num_predict ("length") or a stop string, paced by tokenDelayMs, stopped by the signal.
   */
  private admit(
    reply: readonly string[],
    req: Pick<GenerateRequest, "options" | "logprobs" | "top_logprobs">,
    init: RequestInit | undefined,
  ): Generation {
    if (this.inFlight >= this.maxPending) throw new BusyError();
    this.inFlight++;
    const signal = init?.signal;
    const recordAbort = () => this.aborts.push(signal?.reason);
    signal?.addEventListener("abort", recordAbort, { once: true });
    const release = () => {
      this.inFlight--;
      signal?.removeEventListener("abort", recordAbort);
    };
    const delayMs = this.tokenDelayMs;
    const failAfter = this.failAfterTokens;
    const numPredict = req.options?.num_predict;
    const limit = numPredict !== undefined && numPredict >= 0 ? Math.min(numPredict, reply.length) : reply.length;
    // A stop string that is one whole piece of the reply ends it before that piece.
    const stopAt = reply.slice(0, limit).findIndex((piece) => req.options?.stop?.includes(piece));
    const count = stopAt >= 0 ? stopAt : limit;
    const topCount = req.logprobs ? req.top_logprobs ?? 0 : undefined;
    const startedAt = process.hrtime.bigint();
    async function* events(): AsyncGenerator<SequenceEvent> {
      try {
        for (let i = 0; i < count; i++) {
          if (i === failAfter) throw new InternalError("llama runner process has terminated");
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          if (signal?.aborted) throw new CancelledError();
          const text = reply[i]!;
          yield { type: "text", text, logprobs: topCount === undefined ? [] : [logprobsOf(text, topCount)] };
        }
        const stats = {
          promptTokens: PROMPT_TOKENS,
          generatedTokens: count,
          tokens: CONTEXT_TOKENS,
          queuedAt: startedAt,
          firstTokenAt: startedAt,
          finishedAt: process.hrtime.bigint(),
          numPreemptions: 0,
        };
        yield stopAt >= 0
          ? { type: "done", reason: "stop", stats, stopSequence: reply[stopAt]! }
          : { type: "done", reason: count < reply.length ? "length" : "stop", stats };
      } finally {
        release();
      }
    }
    return { events: events(), startedAt, loadNs: 0, admittedAt: () => startedAt };
  }

  // -- embeddings and tokens ---------------------------------------------------------------

  async embed(req: EmbedRequest): Promise<EmbedResponse> {
    this.requests.push({ kind: "embed", request: req });
    this.requireCapability(req.model, "embedding");
    const inputs = req.input === undefined ? [] : typeof req.input === "string" ? [req.input] : req.input;
    return {
      model: req.model,
      embeddings: inputs.map((text) => normalized(rawVector(text, req.dimensions ?? EMBEDDING_SIZE))),
      total_duration: 1000,
      load_duration: 0,
      prompt_eval_count: inputs.reduce((sum, text) => sum + Buffer.byteLength(text), 0),
    };
  }

  async embeddings(req: EmbeddingsRequest): Promise<EmbeddingsResponse> {
    this.requests.push({ kind: "embeddings", request: req });
    this.requireCapability(req.model, "embedding");
    return { embedding: req.prompt ? rawVector(req.prompt, EMBEDDING_SIZE) : [] };
  }

  /** One token per UTF-8 byte: enough to check that tokenize and detokenize round-trip. */
  async tokenize(req: TokenizeRequest): Promise<TokenizeResponse> {
    this.requireModel(req.model);
    return { tokens: [...Buffer.from(req.content, "utf8")] };
  }

  /** One token per UTF-8 byte of each message's text, as tokenize counts. */
  async tokenizeChat(req: ChatRequest): Promise<TokenizeResponse> {
    this.requests.push({ kind: "tokenizeChat", request: req });
    this.requireModel(req.model);
    return { tokens: req.messages.flatMap((m) => [...Buffer.from(m.content, "utf8")]) };
  }

  async detokenize(req: DetokenizeRequest): Promise<DetokenizeResponse> {
    this.requireModel(req.model);
    if (req.tokens.some((t) => t < 0 || t > 255)) throw new BadRequestError("invalid token id");
    return { content: Buffer.from(req.tokens).toString("utf8") };
  }

  // -- model management --------------------------------------------------------------------

  async list(): Promise<TagsResponse> {
    return {
      models: [...this.models].map(([name, model]) => ({
        name,
        model: name,
        modified_at: model.modifiedAt,
        size: 1000,
        digest: digestOf(name),
        details: DETAILS,
      })),
    };
  }

  async ps(): Promise<PsResponse> {
    return {
      models: [
        {
          name: "fake-model:latest",
          model: "fake-model:latest",
          size: 1000,
          digest: digestOf("fake-model:latest"),
          details: DETAILS,
          expires_at: "2025-01-02T03:09:05.000Z",
          size_vram: 0,
          context_length: 4096,
        },
      ],
    };
  }

  async show(req: ShowRequest): Promise<ShowResponse> {
    const model = this.requireModel(req.model);
    return {
      modelfile: `FROM ${fullName(req.model)}\n`,
      parameters: "temperature 0.7",
      template: "{{ .Prompt }}",
      details: DETAILS,
      model_info: { "general.architecture": "llama", "llama.context_length": 4096 },
      capabilities: model.capabilities,
      modified_at: model.modifiedAt,
    };
  }

  async *pull(req: PullRequest, init?: RequestInit): AsyncIterable<ProgressResponse> {
    yield { status: "pulling manifest" };
    const name = fullName(req.model);
    if (!REMOTE_MODELS.includes(name)) throw new NotFoundError("pull model manifest: file does not exist");
    const digest = `sha256:${digestOf(name)}`;
    for (const completed of [0, 500, 1000]) {
      if (init?.signal?.aborted) throw new CancelledError();
      yield { status: `pulling ${digestOf(name).slice(0, 12)}`, digest, total: 1000, completed };
    }
    yield { status: "verifying sha256 digest" };
    yield { status: "writing manifest" };
    this.models.set(name, { capabilities: ["completion"], modifiedAt: new Date().toISOString() });
    yield { status: "success" };
  }

  async *push(req: PushRequest): AsyncIterable<ProgressResponse> {
    this.requireModel(req.model);
    yield { status: "retrieving manifest" };
    yield { status: "pushing manifest" };
    yield { status: "success" };
  }

  async *create(req: CreateRequest): AsyncIterable<ProgressResponse> {
    const base = req.from !== undefined ? this.requireModel(req.from) : undefined;
    for (const digest of Object.values(req.files ?? {})) {
      if (!this.blobs.has(digest.replace("sha256-", "sha256:"))) throw new BadRequestError(`missing blob ${digest}`);
    }
    yield { status: "using existing layer" };
    yield { status: "writing manifest" };
    this.models.set(fullName(req.model), {
      capabilities: base?.capabilities ?? ["completion"],
      modifiedAt: new Date().toISOString(),
    });
    yield { status: "success" };
  }

  async copy(req: CopyRequest): Promise<void> {
    this.models.set(fullName(req.destination), { ...this.requireModel(req.source) });
  }

  async delete(req: DeleteRequest): Promise<void> {
    this.requireModel(req.model);
    this.models.delete(fullName(req.model));
  }

  async hasBlob(digest: string): Promise<boolean> {
    return this.blobs.has(digest);
  }

  async writeBlob(digest: string, body: NodeJS.ReadableStream): Promise<boolean> {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(Buffer.from(chunk as Buffer));
    const data = Buffer.concat(chunks);
    if (`sha256:${createHash("sha256").update(data).digest("hex")}` !== digest) {
      throw new BadRequestError("digest mismatch");
    }
    const existed = this.blobs.has(digest);
    this.blobs.set(digest, data);
    return !existed;
  }

  fullQueues(): string[] {
    return this.inFlight >= this.maxPending ? ["fake-model:latest"] : [];
  }

  rpcWorkers(): string[] {
    return [];
  }

  backend() {
    return { backend: "cpu" as const, devices: [{ name: "CPU", description: "fake", type: "cpu", memoryFree: 1, memoryTotal: 1 }] };
  }

  metrics(): string {
    return [
      "# TYPE vllm:num_requests_running gauge",
      `vllm:num_requests_running{model_name="fake-model"} ${this.inFlight}`,
      "",
    ].join("\n");
  }

  /** The real JSON shape, with no model loaded. */
  metricsSnapshot() {
    return metricsSnapshot([]);
  }

  // -- helpers -----------------------------------------------------------------------------

  private requireModel(name: string): FakeModel {
    const model = this.models.get(fullName(name));
    if (!model) throw new NotFoundError(`model '${name}' not found`);
    return model;
  }

  private requireCapability(name: string, capability: Capability): FakeModel {
    const model = this.requireModel(name);
    if (!model.capabilities.includes(capability)) {
      throw new BadRequestError(`"${name}" does not support ${capability === "embedding" ? "embeddings" : "generate"}`);
    }
    return model;
  }
}

/** A tool call as Hermes-style models write it, in a few pieces. */
function hermesToolCall(name: string, args: Record<string, unknown>): string[] {
  return ["<tool_call>", JSON.stringify({ name, arguments: args }), "</tool_call>"];
}

function logprobsOf(token: string, topCount: number): TokenLogprobs {
  const bytes = (text: string) => [...Buffer.from(text)];
  const top = Array.from({ length: topCount }, (_, i) => {
    const alternative = i === 0 ? token : `alt${i}`;
    return { token: alternative, logprob: -0.5 * (i + 1), bytes: bytes(alternative) };
  });
  return { token, logprob: -0.5, bytes: bytes(token), top };
}
