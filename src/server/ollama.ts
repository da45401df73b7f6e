// Handlers of the native Ollama API: validate at the edge, call the engine, write the result.
import type { Request, RequestHandler, Response } from "express";
import { BadRequestError } from "../api/errors.js";
import {
  BlobDigestSchema,
  ChatRequestSchema,
  CopyRequestSchema,
  CreateRequestSchema,
  DeleteRequestSchema,
  DetokenizeRequestSchema,
  EmbeddingsRequestSchema,
  EmbedRequestSchema,
  GenerateRequestSchema,
  PullRequestSchema,
  PushRequestSchema,
  ShowRequestSchema,
  TokenizeRequestSchema,
  unknownOptionKeys,
  type ProgressResponse,
} from "../api/ollama.js";
import { parseRequest } from "../api/validate.js";
import { notes, noteUsage, notingUsage, type ServerDeps } from "./context.js";
import { notReadyReason, serverStatus } from "./status.js";
import { abortOnDisconnect, isAsyncIterable, lastItem, writeStream } from "./streams.js";

/**
 * The Ollama release whose API this server speaks: v0.12.11 added `logprobs`/`top_logprobs`, the
 * newest request fields vllama accepts. Clients gate features on it ("0.1.0" read as a very old Ollama).
 */
export const OLLAMA_API_VERSION = "0.12.11";

type Usage = { done: boolean; prompt_eval_count?: number; eval_count?: number };

async function sendGeneration<T extends Usage>(res: Response, result: T | AsyncIterable<T>): Promise<void> {
  if (isAsyncIterable<T>(result)) return writeStream(res, "ndjson", notingUsage(res, result));
  noteUsage(res, result);
  res.json(result);
}

/** Pull, push and create stream progress by default; `stream: false` answers the last status. */
async function sendProgress(res: Response, stream: boolean | undefined, progress: AsyncIterable<ProgressResponse>) {
  if (stream === false) res.json(await lastItem(progress));
  else await writeStream(res, "ndjson", progress);
}

/** Blob digests arrive as "sha256:<hex>" (or the file form "sha256-<hex>"); the engine gets the former. */
function blobDigest(req: Request): string {
  const digest = BlobDigestSchema.safeParse(req.params.digest);
  if (!digest.success) throw new BadRequestError(`invalid digest format: expected "sha256:<64 hex digits>"`);
  return digest.data.replace("sha256-", "sha256:");
}

export function ollamaHandlers({ engine, logger, lifecycle }: ServerDeps) {
  /** Notes the model for the access log and logs options this server ignores. */
  function begin(req: Request, res: Response, model: string): void {
    notes(res).model = model;
    const ignored = unknownOptionKeys((req.body as { options?: unknown }).options);
    if (ignored.length > 0) logger.warn({ id: notes(res).requestId, ignored }, "ignoring unknown options");
  }

  const handlers = {
    root: (_req, res) => {
      res.type("text/plain").send("Ollama is running");
    },
    version: (_req, res) => {
      res.json({ version: OLLAMA_API_VERSION, vllama_version: engine.version });
    },
    health: async (_req, res) => {
      res.json({ status: "ok", ...(await serverStatus(engine)) });
    },
    ready: async (_req, res) => {
      const status = await serverStatus(engine);
      const reason = notReadyReason(status, lifecycle?.draining ?? false);
      res.status(reason === undefined ? 200 : 503).json({ status: reason === undefined ? "ready" : "not ready", reason, ...status });
    },
    metrics: (_req, res) => {
      res.type("text/plain; version=0.0.4").send(engine.metrics());
    },

    generate: async (req, res) => {
      const request = parseRequest(GenerateRequestSchema, req.body);
      begin(req, res, request.model);
      // Ollama's HTTP API streams unless told not to.
      await sendGeneration(res, await engine.generate({ ...request, stream: request.stream ?? true }, { signal: abortOnDisconnect(res) }));
    },
    chat: async (req, res) => {
      const request = parseRequest(ChatRequestSchema, req.body);
      begin(req, res, request.model);
      await sendGeneration(res, await engine.chat({ ...request, stream: request.stream ?? true }, { signal: abortOnDisconnect(res) }));
    },
    embed: async (req, res) => {
      const request = parseRequest(EmbedRequestSchema, req.body);
      begin(req, res, request.model);
      const response = await engine.embed(request, { signal: abortOnDisconnect(res) });
      noteUsage(res, response);
      res.json(response);
    },
    embeddings: async (req, res) => {
      const request = parseRequest(EmbeddingsRequestSchema, req.body);
      begin(req, res, request.model);
      res.json(await engine.embeddings(request, { signal: abortOnDisconnect(res) }));
    },
    tokenize: async (req, res) => {
      const request = parseRequest(TokenizeRequestSchema, req.body);
      begin(req, res, request.model);
      res.json(await engine.tokenize(request));
    },
    detokenize: async (req, res) => {
      const request = parseRequest(DetokenizeRequestSchema, req.body);
      begin(req, res, request.model);
      res.json(await engine.detokenize(request));
    },

    tags: async (_req, res) => {
      res.json(await engine.list());
    },
    ps: async (_req, res) => {
      res.json(await engine.ps());
    },
    show: async (req, res) => {
      const request = parseRequest(ShowRequestSchema, req.body);
      notes(res).model = request.model;
      res.json(await engine.show(request));
    },
    pull: async (req, res) => {
      const request = parseRequest(PullRequestSchema, req.body);
      notes(res).model = request.model;
      await sendProgress(res, request.stream, engine.pull(request, { signal: abortOnDisconnect(res) }));
    },
    push: async (req, res) => {
      const request = parseRequest(PushRequestSchema, req.body);
      notes(res).model = request.model;
      await sendProgress(res, request.stream, engine.push(request, { signal: abortOnDisconnect(res) }));
    },
    create: async (req, res) => {
      const request = parseRequest(CreateRequestSchema, req.body);
      notes(res).model = request.model;
      if (request.from === undefined && request.files === undefined) {
        throw new BadRequestError("neither 'from' or 'files' was specified");
      }
      await sendProgress(res, request.stream, engine.create(request, { signal: abortOnDisconnect(res) }));
    },
    copy: async (req, res) => {
      const request = parseRequest(CopyRequestSchema, req.body);
      notes(res).model = request.source;
      await engine.copy(request);
      res.status(200).end();
    },
    delete: async (req, res) => {
      const request = parseRequest(DeleteRequestSchema, req.body);
      notes(res).model = request.model;
      await engine.delete(request);
      res.status(200).end();
    },
    hasBlob: async (req, res) => {
      res.status((await engine.hasBlob(blobDigest(req))) ? 200 : 404).end();
    },
    writeBlob: async (req, res) => {
      const created = await engine.writeBlob(blobDigest(req), req);
      res.status(created ? 201 : 200).end();
    },
  } satisfies Record<string, RequestHandler>;
  return handlers;
}
