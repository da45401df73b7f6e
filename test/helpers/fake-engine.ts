// A deterministic EngineService for route and validation tests: real validation of model names
// and capabilities, a bounded in-flight count (-> BusyError), token streams that honour the abort
// signal, and a record of every request and abort so tests can check the translation layers.
import { createHash } from "node:crypto";
import type { EngineService, RequestInit } from "../../src/api/engine-contract.js";
import { BadRequestError, BusyError, CancelledError, InternalError, NotFoundError } from "../../src/api/errors.js";
import type {
  Capability,
  ChatRequest,
  ChatResponse,
  CopyRequest,
  CreateRequest,
  DeleteRequest,
  DetokenizeRequest,
  DetokenizeResponse,
  EmbeddingsRequest,
  EmbeddingsResponse,
  EmbedRequest,
  EmbedResponse,
  GenerateRequest,
  GenerateResponse,
  Logprob,
  ModelDetails,
  ProgressResponse,
  PsResponse,
  PullRequest,
  PushRequest,
  ShowRequest,
  ShowResponse,
  TagsResponse,
  TokenizeRequest,
  TokenizeResponse,
  ToolCall,
} from "../../src/api/schemas.js";

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
const MS_TO_NS = 1_000_000;

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
  kind: "generate" | "chat" | "embed" | "embeddings";
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

  // -- generation --------------------------------------------------------------------------

  async generate(req: GenerateRequest, init?: RequestInit): Promise<GenerateResponse | AsyncIterable<GenerateResponse>> {
    this.requests.push({ kind: "generate", request: req });
    this.requireCapability(req.model, "completion");
    const pieces = this.admit(init);
    const toResponse = (piece: Piece): GenerateResponse => ({
      model: req.model,
      created_at: new Date().toISOString(),
      response: piece.text,
      done: piece.final !== undefined,
      ...(req.logprobs && piece.text !== "" ? { logprobs: [logprobOf(piece.text, req.top_logprobs ?? 0)] } : {}),
      ...(piece.final ? { ...piece.final, context: [1, 2, 3] } : {}),
    });
    const stream = map(pieces(req.options?.num_predict, req.format !== undefined), toResponse);
    return req.stream === true ? stream : collectGenerate(stream);
  }

  async chat(req: ChatRequest, init?: RequestInit): Promise<ChatResponse | AsyncIterable<ChatResponse>> {
    this.requests.push({ kind: "chat", request: req });
    const model = this.requireCapability(req.model, "completion");
    if (req.tools?.length && !model.capabilities.includes("tools")) {
      throw new BadRequestError(`${req.model} does not support tools`);
    }
    const pieces = this.admit(init);
    const lastUser = [...req.messages].reverse().find((m) => m.role === "user")?.content ?? "";
    // With tools offered (and no tool result yet), the fake model calls the first tool.
    const toolCall: ToolCall | undefined =
      req.tools?.length && req.messages.at(-1)?.role !== "tool"
        ? { function: { name: req.tools[0]!.function.name, arguments: { query: lastUser } } }
        : undefined;
    const toResponse = (piece: Piece): ChatResponse => ({
      model: req.model,
      created_at: new Date().toISOString(),
      message: {
        role: "assistant",
        content: toolCall ? "" : piece.text,
        ...(toolCall && piece.final ? { tool_calls: [toolCall] } : {}),
      },
      done: piece.final !== undefined,
      ...(req.logprobs && piece.text !== "" ? { logprobs: [logprobOf(piece.text, req.top_logprobs ?? 0)] } : {}),
      ...piece.final,
    });
    const stream = map(pieces(req.options?.num_predict, req.format !== undefined), toResponse);
    return req.stream === true ? stream : collectChat(stream);
  }

  /**
   * Admits a request (or refuses it when full) and returns its token-piece generator: the
   * natural reply, cut by num_predict ("length"), paced by tokenDelayMs, stopped by the signal.
   */
  private admit(init: RequestInit | undefined) {
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
    return async function* pieces(numPredict: number | undefined, json: boolean): AsyncGenerator<Piece> {
      const started = Date.now();
      try {
        const tokens = json ? JSON_REPLY_TOKENS : REPLY_TOKENS;
        const count = numPredict !== undefined && numPredict >= 0 ? Math.min(numPredict, tokens.length) : tokens.length;
        for (let i = 0; i < count; i++) {
          if (i === failAfter) throw new InternalError("llama runner process has terminated");
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          if (signal?.aborted) throw new CancelledError();
          yield { text: tokens[i]! };
        }
        const elapsedNs = (Date.now() - started) * MS_TO_NS;
        yield {
          text: "",
          final: {
            done_reason: count < tokens.length ? "length" : "stop",
            total_duration: elapsedNs,
            load_duration: 0,
            prompt_eval_count: PROMPT_TOKENS,
            prompt_eval_duration: 1000,
            eval_count: count,
            eval_duration: elapsedNs,
          },
        };
      } finally {
        release();
      }
    };
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

interface Piece {
  text: string;
  final?: Pick<
    GenerateResponse,
    "done_reason" | "total_duration" | "load_duration" | "prompt_eval_count" | "prompt_eval_duration" | "eval_count" | "eval_duration"
  >;
}

function logprobOf(token: string, topCount: number): Logprob {
  const top = Array.from({ length: topCount }, (_, i) => ({ token: i === 0 ? token : `alt${i}`, logprob: -0.5 * (i + 1) }));
  return { token, logprob: -0.5, top_logprobs: top };
}

async function* map<A, B>(items: AsyncIterable<A>, f: (a: A) => B): AsyncGenerator<B> {
  for await (const item of items) yield f(item);
}

async function collectGenerate(stream: AsyncIterable<GenerateResponse>): Promise<GenerateResponse> {
  let text = "";
  const logprobs: Logprob[] = [];
  for await (const chunk of stream) {
    text += chunk.response;
    logprobs.push(...(chunk.logprobs ?? []));
    if (chunk.done) return { ...chunk, response: text, ...(logprobs.length ? { logprobs } : {}) };
  }
  throw new Error("fake stream ended without done");
}

async function collectChat(stream: AsyncIterable<ChatResponse>): Promise<ChatResponse> {
  let text = "";
  const logprobs: Logprob[] = [];
  for await (const chunk of stream) {
    text += chunk.message.content;
    logprobs.push(...(chunk.logprobs ?? []));
    if (chunk.done) {
      return { ...chunk, message: { ...chunk.message, content: text }, ...(logprobs.length ? { logprobs } : {}) };
    }
  }
  throw new Error("fake stream ended without done");
}
