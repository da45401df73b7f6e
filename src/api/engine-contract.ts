// What the HTTP layer needs from the engine. The server codes against this interface only, so
// route tests run against a fake and the real engine can change behind it.
import type { MetricsSnapshot } from "./metrics.js";
import type {
  ChatRequest,
  ChatResponse,
  CopyRequest,
  CreateRequest,
  DeleteRequest,
  DetokenizeRequest,
  DetokenizeResponse,
  EmbedRequest,
  EmbedResponse,
  EmbeddingsRequest,
  EmbeddingsResponse,
  GenerateRequest,
  GenerateResponse,
  ProgressResponse,
  PsResponse,
  PullRequest,
  PushRequest,
  ShowRequest,
  ShowResponse,
  TagsResponse,
  TokenizeRequest,
  TokenizeResponse,
} from "./ollama.js";

export interface RequestInit {
  /** Aborted when the client goes away: the engine stops the work and frees its slot. */
  signal?: AbortSignal;
  /**
   * The choices of one request (OpenAI's `n`) pass the same object: their sequences share the
   * prompt's computed cells even with the prefix cache off. Only its identity counts.
   */
  promptGroup?: object;
}

/**
 * Generation calls resolve once the request is admitted (queue full -> BusyError, unknown
 * model -> NotFoundError); they return an async iterable iff `req.stream === true`, whose last
 * item has `done: true`. Progress iterables (pull, push, create) end with `status: "success"`
 * and report failures by throwing from the iterator.
 */
export interface EngineService {
  generate(req: GenerateRequest, init?: RequestInit): Promise<GenerateResponse | AsyncIterable<GenerateResponse>>;
  chat(req: ChatRequest, init?: RequestInit): Promise<ChatResponse | AsyncIterable<ChatResponse>>;
  embed(req: EmbedRequest, init?: RequestInit): Promise<EmbedResponse>;
  embeddings(req: EmbeddingsRequest, init?: RequestInit): Promise<EmbeddingsResponse>;
  tokenize(req: TokenizeRequest): Promise<TokenizeResponse>;
  /** The prompt a chat request would be given (its messages and tools in the model's template), whole, as tokens. */
  tokenizeChat(req: ChatRequest): Promise<TokenizeResponse>;
  detokenize(req: DetokenizeRequest): Promise<DetokenizeResponse>;
  ps(): Promise<PsResponse>;
  list(): Promise<TagsResponse>;
  show(req: ShowRequest): Promise<ShowResponse>;
  pull(req: PullRequest, init?: RequestInit): AsyncIterable<ProgressResponse>;
  push(req: PushRequest, init?: RequestInit): AsyncIterable<ProgressResponse>;
  create(req: CreateRequest, init?: RequestInit): AsyncIterable<ProgressResponse>;
  copy(req: CopyRequest): Promise<void>;
  delete(req: DeleteRequest): Promise<void>;
  hasBlob(digest: string): Promise<boolean>;
  /** Stores a blob after checking its digest; true if created, false if it already existed. */
  writeBlob(digest: string, body: NodeJS.ReadableStream): Promise<boolean>;
  /** Prometheus text exposition, with vLLM's metric names. */
  metrics(): string;
  /** The same figures as JSON, with the last minute's rates and latency percentiles. */
  metricsSnapshot(): MetricsSnapshot;
  /** The backend llama.cpp runs on, chosen at start: "cuda" when a CUDA device is usable, else "cpu". */
  backend(): { backend: "cuda" | "cpu"; devices: Array<{ name: string; description: string; type: string; memoryFree: number; memoryTotal: number }> };
  /** The loaded models whose queue is full, so that their next request would get 503 busy (one name per loaded copy). */
  fullQueues(): string[];
  /** The RPC workers (`serve --rpc` host:port) every model's layers are spread over; none: all local. */
  rpcWorkers(): string[];
  readonly version: string;
}
