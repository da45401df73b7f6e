// WebSocket streaming at `GET /ws`: several generate, chat and embed requests in flight on one
// socket, each message tagged with the request's `id`.
//   client: {"id": 1, "type": "generate" | "chat" | "embed", ...the body of /api/<type>}
//           {"id": 1, "type": "cancel"}
//   server: {"id": 1, "type": "generate" | "chat" | "embed", ...a chunk or response of /api/<type>}
//           {"id": 1, "type": "error", "error": "...", "status": 400, "code": "bad_request"}
// A request ends with its `done: true` chunk (embed: its one response) or an error. A bad message
// gets an error with its id (null when it has none) and the socket stays open for the others; a
// closed socket cancels its requests, which frees their KV cells. A message of OFF_THREAD_BYTES or
// more is read and checked on a body worker first, as a large HTTP body is (src/server/json-body.ts),
// so a refused one costs the JS thread only its bytes; a socket's messages are handled in the order
// they came (a cancel finds the request sent before it, however large).
import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server } from "node:http";
import type { RequestHandler } from "express";
import type { Duplex } from "node:stream";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import {
  BadRequestError, CancelledError, ForbiddenError, InternalError, NotFoundError, TooManyRequestsError, UnauthorizedError, UpgradeRequiredError,
  VllamaError,
} from "../api/errors.js";
import { ChatRequestSchema, EmbedRequestSchema, GenerateRequestSchema } from "../api/ollama.js";
import { parseRequest } from "../api/validate.js";
import type { WorkerError } from "../util/thread-pool.js";
import { keyCheck } from "./auth.js";
import { withDefaults, type ServerDeps } from "./context.js";
import { toVllamaError } from "./errors.js";
import { OFF_THREAD_BYTES, type JsonBodyParser } from "./json-body.js";
import { requestCheck, type RequestCheck } from "./request-checks.js";
import { hostGuardAllows, originCheck } from "./security.js";
import { expectSingle, expectStream } from "./streams.js";
import { envelopeOf, idOf, parseMessage, type RequestId } from "./ws-message.js";

export const WS_PATH = "/ws";

/**
 * Requests in flight on one socket. A model runs `parallel` sequences at once (32 by default) and
 * queues the rest, so more than this on one socket would only wait; other sockets are not limited.
 */
export const MAX_REQUESTS_PER_SOCKET = 64;

/** Express's body-limit notation ("100mb", "512kb", "1048576"), which config.ts validated, in bytes. */
function byteCount(limit: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(limit.trim());
  if (!match) throw new InternalError(`invalid body limit: ${limit}`);
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[(match[2] ?? "b").toLowerCase() as "b"];
  return Math.floor(Number(match[1]) * unit);
}

/** What a request's log line takes from its last chunk. */
type Usage = { prompt_eval_count?: number; eval_count?: number };

async function* answers<T extends Usage>(result: T | AsyncIterable<T>, stream: boolean): AsyncGenerator<T> {
  if (stream) yield* expectStream(result);
  else yield expectSingle(result);
}

function errorMessage(id: RequestId | null, error: VllamaError) {
  return { id, type: "error" as const, error: error.message, status: error.status, code: error.code };
}

/** Sends one JSON message; resolves once it is written, so a slow client holds back its own request only. */
function send(socket: WebSocket, message: object): Promise<void> {
  return new Promise((resolve, reject) => socket.send(JSON.stringify(message), (err) => (err ? reject(err) : resolve())));
}

/** A large message the body worker refused: its error, with the id the worker read from it. */
class RefusedMessage extends VllamaError {
  constructor(
    readonly id: RequestId | null,
    error: WorkerError,
  ) {
    super(error.message, error.status, error.code);
  }
}

/** The part of the body parser that reads large messages. */
type MessageChecker = Pick<JsonBodyParser, "checkMessage">;

/** One socket: its requests in flight by id. */
class Connection {
  private readonly inFlight = new Map<string, AbortController>();
  /** The messages received and not yet handled, in order: each waits for the one before. */
  private received: Promise<void> = Promise.resolve();

  constructor(
    private readonly socket: WebSocket,
    private readonly deps: ServerDeps,
    private readonly connectionId: string,
    private readonly checkBody: RequestCheck,
    private readonly bodies: MessageChecker,
  ) {
    socket.on("message", (data, isBinary) => {
      this.received = this.received.then(() => this.receive(data, isBinary));
    });
    socket.on("close", () => this.cancelAll());
    // Protocol errors (a frame over the size limit, invalid UTF-8) close this socket only.
    socket.on("error", (err) => deps.logger.warn({ connection: connectionId, err: err.message }, "websocket error"));
  }

  /** Never throws: a bad message is answered with its error. */
  private async receive(data: RawData, isBinary: boolean): Promise<void> {
    let message: unknown;
    try {
      if (isBinary) throw new BadRequestError("binary messages are not supported: send JSON text");
      message = await this.read(data as Buffer); // ws delivers a text message as one Buffer
      const { id, type, body } = envelopeOf(message);
      if (type === "cancel") return this.cancel(id);
      const key = JSON.stringify(id);
      if (this.inFlight.has(key)) throw new BadRequestError(`a request with id ${key} is already in flight`);
      if (this.inFlight.size >= MAX_REQUESTS_PER_SOCKET) {
        throw new TooManyRequestsError(`too many requests in flight on this socket (limit ${MAX_REQUESTS_PER_SOCKET})`);
      }
      const controller = new AbortController();
      this.inFlight.set(key, controller);
      void this.run(id, type, body, controller.signal).finally(() => this.inFlight.delete(key));
    } catch (err) {
      void this.reply(errorMessage(err instanceof RefusedMessage ? err.id : idOf(message), toVllamaError(err)));
    }
  }

  /** The message's JSON; a large one is parsed here only once the body worker passed it. */
  private async read(bytes: Buffer): Promise<unknown> {
    if (bytes.length < OFF_THREAD_BYTES) return parseMessage(bytes);
    const { error, id, bytes: returned } = await this.bodies.checkMessage(bytes);
    if (error) throw new RefusedMessage(id, error);
    return parseMessage(returned);
  }

  private cancel(id: RequestId): void {
    const controller = this.inFlight.get(JSON.stringify(id));
    if (!controller) throw new NotFoundError(`no request with id ${JSON.stringify(id)} is in flight`);
    controller.abort(new CancelledError());
  }

  private cancelAll(): void {
    for (const controller of this.inFlight.values()) controller.abort(new CancelledError("client disconnected"));
  }

  /** Runs one request to its end, sending its chunks, and logs it as the access log does an HTTP request. */
  private async run(id: RequestId, type: "generate" | "chat" | "embed", body: object, signal: AbortSignal): Promise<void> {
    const started = process.hrtime.bigint();
    const { logger } = this.deps;
    const line: Record<string, unknown> = { connection: this.connectionId, id, type, model: (body as { model?: unknown }).model };
    try {
      let last: Usage | undefined;
      await this.checkBody(body);
      for await (const item of this.results(type, body, signal)) {
        last = item;
        await send(this.socket, { id, type, ...item });
      }
      line.prompt_tokens = last?.prompt_eval_count;
      line.eval_tokens = last?.eval_count;
    } catch (err) {
      const error = signal.aborted ? toVllamaError(signal.reason) : toVllamaError(err);
      line.error = error.message;
      if (error.status >= 500) logger.error({ ...line, err }, "websocket request failed");
      await this.reply(errorMessage(id, error));
    } finally {
      line.latency_ms = Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10;
      logger.info(line, "websocket request");
    }
  }

  /** The request's chunks (a stream by default, as over HTTP), or its one response. */
  private async *results(type: "generate" | "chat" | "embed", body: object, signal: AbortSignal): AsyncGenerator<Usage> {
    const { engine } = this.deps;
    if (type === "embed") {
      yield await engine.embed(parseRequest(EmbedRequestSchema, body), { signal });
    } else if (type === "generate") {
      const request = parseRequest(GenerateRequestSchema, body);
      const stream = request.stream ?? true;
      yield* answers(await engine.generate({ ...request, stream }, { signal }), stream);
    } else {
      const request = parseRequest(ChatRequestSchema, body);
      const stream = request.stream ?? true;
      yield* answers(await engine.chat({ ...request, stream }, { signal }), stream);
    }
  }

  /** Sends an error; a socket that is gone has nobody to tell. */
  private async reply(message: object): Promise<void> {
    await send(this.socket, message).catch(() => undefined);
  }
}

function refuseUpgrade(socket: Duplex, status: number, error: VllamaError): void {
  const body = JSON.stringify({ error: error.message });
  socket.end(
    `HTTP/1.1 ${status} ${error.code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** `GET /ws` without an upgrade: a plain HTTP client asked for it. */
export const upgradeRequired: RequestHandler = (_req, res) => {
  res.setHeader("Upgrade", "websocket");
  throw new UpgradeRequiredError(`${WS_PATH} is a WebSocket endpoint: connect with a WebSocket client`);
};

export interface WebSockets {
  /** Closes every socket (their requests are cancelled). */
  close(): void;
}

/**
 * Answers WebSocket upgrades of `server` at `/ws`, with the HTTP routes' host and origin checks;
 * `bodies` reads large messages off the JS thread.
 */
export function attachWebSockets(server: Server, deps: ServerDeps, bodies: MessageChecker): WebSockets {
  const wss = new WebSocketServer({ noServer: true, maxPayload: byteCount(deps.config.bodyLimit) });
  const allowedOrigin = originCheck(deps.config.origins);
  const guardsHost = hostGuardAllows(deps.config.host);
  const keys = deps.config.apiKeys ?? [];
  const checkKey = keyCheck(keys);
  const checkBody = requestCheck(withDefaults(deps.config));
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (path !== WS_PATH) return refuseUpgrade(socket, 404, new NotFoundError(`${path} does not upgrade to a WebSocket`));
    if (!guardsHost(req.headers.host)) return refuseUpgrade(socket, 403, new ForbiddenError(`host not allowed: ${req.headers.host}`));
    if (!allowedOrigin(req.headers.origin, req.headers.host)) {
      return refuseUpgrade(socket, 403, new ForbiddenError(`origin not allowed: ${req.headers.origin}`));
    }
    // Upgrades bypass Express, so the API keys are checked here as apiKeyAuth checks routes.
    const key = keys.length === 0 ? undefined : checkKey(req.headers);
    if (key instanceof UnauthorizedError) return refuseUpgrade(socket, 401, key);
    wss.handleUpgrade(req, socket, head, (ws) => new Connection(ws, deps, randomUUID(), checkBody, bodies));
  });
  return {
    close: () => {
      for (const client of wss.clients) client.terminate();
      wss.close();
    },
  };
}
