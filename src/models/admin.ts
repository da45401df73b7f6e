// Model administration, Ollama's calls over the store: list, show, pull, push, create, copy,
// delete and blobs. Requests arrive unvalidated (the in-process API) and are parsed here.
import type { RequestInit } from "../api/engine-contract.js";
import {
  CopyRequestSchema, CreateRequestSchema, DeleteRequestSchema, PullRequestSchema, PushRequestSchema,
  ShowRequestSchema, type CopyRequest, type CreateRequest, type DeleteRequest, type ProgressResponse,
  type PullRequest, type PushRequest, type ShowRequest, type ShowResponse, type TagsResponse,
} from "../api/ollama.js";
import { InternalError } from "../api/errors.js";
import { parseRequest } from "../api/validate.js";
import { AsyncQueue } from "../util/async-queue.js";
import { pull as registryPull, push as registryPush } from "./registry.js";
import type { ModelStore } from "./store.js";
import type { ModelParameters } from "./types.js";

export class ModelAdmin {
  constructor(readonly store: ModelStore) {}

  async list(): Promise<TagsResponse> {
    return { models: await this.store.list() };
  }

  async show(input: ShowRequest): Promise<ShowResponse> {
    const req = parseRequest(ShowRequestSchema, input);
    const session = { system: req.system, options: req.options as ModelParameters | undefined };
    return this.store.show(req.model, req.verbose ?? false, session, req.verify ?? false);
  }

  pull(input: PullRequest, init: RequestInit = {}): AsyncIterable<ProgressResponse> {
    return progress(async (onProgress) => {
      const req = parseRequest(PullRequestSchema, input);
      await writingStore(registryPull(this.store, req.model, { signal: init.signal, insecure: req.insecure }, onProgress));
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
      await writingStore(this.store.create(req, onProgress));
    });
  }

  async copy(input: CopyRequest): Promise<void> {
    const req = parseRequest(CopyRequestSchema, input);
    await writingStore(this.store.copy(req.source, req.destination));
  }

  async delete(input: DeleteRequest): Promise<void> {
    const req = parseRequest(DeleteRequestSchema, input);
    await writingStore(this.store.delete(req.model));
  }

  hasBlob(digest: string): Promise<boolean> {
    return this.store.hasBlob(digest);
  }

  /** Stores a blob unless it is already there; true if it was written. */
  async writeBlob(digest: string, body: NodeJS.ReadableStream): Promise<boolean> {
    if (await this.store.hasBlob(digest)) return false;
    await writingStore(this.store.writeBlob(digest, body as AsyncIterable<Uint8Array>));
    return true;
  }
}

/**
 * A write to the model store that the file system refuses is the server's problem, said plainly:
 * a read-only store answered the raw `EACCES: permission denied, open '/home/...'`, host path and all.
 */
async function writingStore<T>(write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (error) {
    const { code, syscall } = error as NodeJS.ErrnoException;
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") throw new InternalError(`the model store is not writable (${code})`);
    // A recursive mkdir that cannot write says ENOENT (Node 20, on a read-only mount).
    if (code === "ENOENT" && syscall === "mkdir") throw new InternalError("the model store is not writable (cannot create its folders)");
    if (code === "ENOSPC" || code === "EDQUOT") throw new InternalError(`no space left for the model store (${code})`);
    throw error;
  }
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
