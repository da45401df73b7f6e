// HTTP client of a running vllama (or Ollama) server, for the CLI. Streams are NDJSON: an
// `{"error": ...}` line, or a stream that ends before its terminal object, throws.
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import type {
  ChatRequest,
  ChatResponse,
  CopyRequest,
  CreateRequest,
  GenerateRequest,
  GenerateResponse,
  ProgressResponse,
  PsResponse,
  ShowRequest,
  ShowResponse,
  TagsResponse,
  VersionResponse,
} from "../api/ollama.js";

/** The server answered with an error status, or sent an error line mid-stream (status 200). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Nothing answered at the server's address. */
export class ConnectionError extends Error {
  constructor(readonly baseUrl: string, options?: ErrorOptions) {
    super(`could not connect to vllama at ${baseUrl}, is \`vllama serve\` running?`, options);
    this.name = "ConnectionError";
  }
}

interface RequestOptions {
  json?: unknown;
  /** Path of a file sent as the raw body. */
  file?: string;
  signal?: AbortSignal;
}

/** Request bodies as the CLI sends them (the server fills in defaults). */
export type Body<T> = Partial<T> & { model: string };

const NETWORK_ERROR_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ETIMEDOUT",
  "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_SOCKET",
]);

function isNetworkError(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string } } | undefined)?.cause;
  return err instanceof TypeError && cause?.code !== undefined && NETWORK_ERROR_CODES.has(cause.code);
}

async function errorFrom(response: Response): Promise<ApiError> {
  const text = await response.text();
  let message = text.trim() || response.statusText || `HTTP ${response.status}`;
  try {
    const body = JSON.parse(text) as { error?: unknown };
    if (typeof body.error === "string") message = body.error;
    else if (body.error && typeof (body.error as { message?: unknown }).message === "string") {
      message = (body.error as { message: string }).message;
    }
  } catch {
    // not JSON: keep the text
  }
  return new ApiError(message, response.status);
}

/**
 * Reads an NDJSON body object by object, throwing on an `error` line. `isLast` marks the
 * terminal object; a stream that ends without one was cut off.
 */
export async function* readNdjson<T>(body: ReadableStream<Uint8Array>, isLast: (item: T) => boolean): AsyncGenerator<T> {
  const decoder = new TextDecoder();
  let buffered = "";
  const parse = (line: string): T => {
    let item: unknown;
    try {
      item = JSON.parse(line);
    } catch {
      throw new ApiError(`invalid response line from server: ${line.slice(0, 200)}`, 200);
    }
    const error = (item as { error?: unknown }).error;
    if (error !== undefined) throw new ApiError(String(error), 200);
    return item as T;
  };
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line === "") continue;
      const item = parse(line);
      yield item;
      if (isLast(item)) return;
    }
  }
  const rest = (buffered + decoder.decode()).trim();
  if (rest !== "") {
    const item = parse(rest);
    yield item;
    if (isLast(item)) return;
  }
  throw new ApiError("the server closed the stream before it finished", 200);
}

const isDone = (item: { done?: boolean }) => item.done === true;
const isSuccess = (item: ProgressResponse) => item.status === "success";

export class Client {
  constructor(readonly baseUrl: string) {}

  private async request(method: string, path: string, init: RequestOptions = {}): Promise<Response> {
    const { json, file, signal } = init;
    const headers: Record<string, string> = { Accept: "application/json" };
    let body: RequestInit["body"];
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (file !== undefined) {
      headers["Content-Type"] = "application/octet-stream";
      body = Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>;
    }
    let response: Response;
    try {
      // duplex: a streamed upload body (undici requires it to be named)
      response = await fetch(new URL(path, this.baseUrl), { method, headers, body, signal, duplex: "half" } as RequestInit);
    } catch (err) {
      if (isNetworkError(err)) throw new ConnectionError(this.baseUrl, { cause: err });
      throw err;
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }

  private async json<T>(method: string, path: string, json?: unknown): Promise<T> {
    return (await (await this.request(method, path, { json })).json()) as T;
  }

  private async *stream<T>(path: string, body: unknown, isLast: (item: T) => boolean, signal?: AbortSignal): AsyncGenerator<T> {
    const response = await this.request("POST", path, { json: body, signal });
    if (!response.body) throw new ApiError("empty response from server", response.status);
    yield* readNdjson<T>(response.body, isLast);
  }

  version(): Promise<VersionResponse> {
    return this.json("GET", "/api/version");
  }

  list(): Promise<TagsResponse> {
    return this.json("GET", "/api/tags");
  }

  ps(): Promise<PsResponse> {
    return this.json("GET", "/api/ps");
  }

  /**
   * `fields`: an interactive chat's system prompt and options, which the Modelfile shown includes;
   * `verify` to hash every blob of the model first.
   */
  show(model: string, verbose = false, fields: Pick<ShowRequest, "system" | "options" | "verify"> = {}): Promise<ShowResponse> {
    return this.json("POST", "/api/show", { model, verbose, ...fields });
  }

  async delete(model: string): Promise<void> {
    await this.request("DELETE", "/api/delete", { json: { model } });
  }

  async copy(req: CopyRequest): Promise<void> {
    await this.request("POST", "/api/copy", { json: req });
  }

  pull(model: string, insecure = false): AsyncGenerator<ProgressResponse> {
    return this.stream("/api/pull", { model, insecure, stream: true }, isSuccess);
  }

  push(model: string, insecure = false): AsyncGenerator<ProgressResponse> {
    return this.stream("/api/push", { model, insecure, stream: true }, isSuccess);
  }

  create(req: Body<CreateRequest>): AsyncGenerator<ProgressResponse> {
    return this.stream("/api/create", { ...req, stream: true }, isSuccess);
  }

  generate(req: Body<GenerateRequest>, signal?: AbortSignal): AsyncGenerator<GenerateResponse> {
    return this.stream<GenerateResponse>("/api/generate", { ...req, stream: true }, isDone, signal);
  }

  chat(req: Body<ChatRequest>, signal?: AbortSignal): AsyncGenerator<ChatResponse> {
    return this.stream<ChatResponse>("/api/chat", { ...req, stream: true }, isDone, signal);
  }

  async hasBlob(digest: string): Promise<boolean> {
    try {
      await this.request("HEAD", `/api/blobs/${digest}`);
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return false;
      throw err;
    }
  }

  /** Uploads a local file as a blob (streamed: model files are gigabytes). */
  async uploadBlob(digest: string, path: string): Promise<void> {
    await this.request("POST", `/api/blobs/${digest}`, { file: path });
  }
}
