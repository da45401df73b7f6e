// Pull and push over the Docker registry v2 protocol, as Ollama's registry (and Hugging Face's
// `hf.co` endpoint) speak it, signing in where a registry challenges (registry-auth.ts). Downloads
// land in `blobs/sha256-<hex>-partial` and resume with HTTP Range; the manifest is written last, so
// a model never appears half-pulled.

import { createReadStream } from "node:fs";
import { chmod, mkdir, open, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { Readable, Transform } from "node:stream";
import {
  BadRequestError,
  CancelledError,
  InternalError,
  NotFoundError,
  UnauthorizedError,
  VllamaError,
} from "../api/errors.js";
import { sha256File, shortDigest } from "./digest.js";
import { parseModelName, type ModelName } from "./names.js";
import { defaultKeyPath, RegistryAuth, registryErrorDetail, type RegistryAction } from "./registry-auth.js";
import { BLOB_MODE, uniqueDescriptors, type ModelStore } from "./store.js";
import { MANIFEST_MEDIA_TYPE, type Descriptor, type Manifest, type OnProgress } from "./types.js";

export interface RegistryOptions {
  signal?: AbortSignal;
  /** Use plain http (Ollama's `insecure`). */
  insecure?: boolean;
  /** Overrides `scheme://host` (tests, mirrors). */
  baseUrl?: string;
  /** The ed25519 key that signs registry sign-ins; default Ollama's, ~/.ollama/id_ed25519. */
  keyPath?: string;
}

const PROGRESS_INTERVAL_MS = 100;
const MAX_DOWNLOAD_ATTEMPTS = 3;

function isLoopbackHost(host: string): boolean {
  const hostname = host.replace(/:\d+$/, "").toLowerCase();
  return hostname === "localhost" || hostname === "127.0.0.1";
}

function registryBaseUrl(name: ModelName, options: RegistryOptions): string {
  if (options.baseUrl) return options.baseUrl.replace(/\/+$/, "");
  const plain = options.insecure || process.env.VLLAMA_REGISTRY_SCHEME === "http" || isLoopbackHost(name.host);
  return `${plain ? "http" : "https"}://${name.host}`;
}

/** `{base}/v2/{namespace}/{model}`: the repository all pull and push URLs hang off. */
function repositoryUrl(name: ModelName, options: RegistryOptions): string {
  return `${registryBaseUrl(name, options)}/v2/${name.namespace}/${name.model}`;
}

function causeMessage(error: unknown): string {
  const { cause, message } = error as { cause?: { message?: string }; message?: string };
  return cause?.message ?? message ?? String(error);
}

function transportError(error: unknown, what: string, signal: AbortSignal | undefined): VllamaError {
  if (error instanceof VllamaError) return error;
  if (signal?.aborted) return new CancelledError(`${what}: cancelled`);
  return new InternalError(`${what}: ${causeMessage(error)}`);
}

/** One pull or push: its repository, its cancel signal, and the registry tokens it has earned. */
interface Remote {
  repository: string;
  signal?: AbortSignal;
  auth: RegistryAuth;
}

function openRemote(name: ModelName, options: RegistryOptions, action: RegistryAction): Remote {
  const { signal } = options;
  const auth = new RegistryAuth({ action, keyPath: options.keyPath ?? defaultKeyPath(), signal });
  return { repository: repositoryUrl(name, options), signal, auth };
}

/** Every registry request goes through here: signed in when challenged, cancellable, errors named. */
async function send(remote: Remote, url: string, init: RequestInit | (() => RequestInit), what: string): Promise<Response> {
  const attempt = () => ({ ...(typeof init === "function" ? init() : init), signal: remote.signal });
  try {
    return await remote.auth.send(url, attempt, what);
  } catch (error) {
    throw transportError(error, `${what} (${url})`, remote.signal);
  }
}

async function httpError(response: Response, what: string): Promise<VllamaError> {
  const detail = await registryErrorDetail(response);
  if (response.status === 401 || response.status === 403) return new UnauthorizedError(`${what}: unauthorized${detail}`);
  return new InternalError(`${what}: HTTP ${response.status}${detail}`);
}

/** Emits `{status, digest, total, completed}` at most every PROGRESS_INTERVAL_MS, and always at the end. */
function progressReporter(onProgress: OnProgress, status: string, layer: Descriptor) {
  let last = 0;
  return (completed: number, force = false): void => {
    const now = Date.now();
    if (!force && now - last < PROGRESS_INTERVAL_MS) return;
    last = now;
    onProgress({ status, digest: layer.digest, total: layer.size, completed });
  };
}

function countingStream(onBytes: (count: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
}

function validateManifest(value: unknown): Manifest {
  const manifest = value as Manifest;
  const descriptors = manifest && Array.isArray(manifest.layers) && manifest.config ? [manifest.config, ...manifest.layers] : [];
  const valid =
    descriptors.length > 0 &&
    descriptors.every((d) => /^sha256:[0-9a-f]{64}$/.test(d?.digest) && Number.isSafeInteger(d.size) && d.size >= 0);
  if (!valid) throw new InternalError("pull model manifest: the registry sent an invalid manifest");
  return manifest;
}

async function fetchManifest(remote: Remote, tag: string): Promise<{ manifest: Manifest; bytes: Buffer }> {
  const what = "pull model manifest";
  const response = await send(remote, `${remote.repository}/manifests/${tag}`, { headers: { Accept: MANIFEST_MEDIA_TYPE } }, what);
  if (response.status === 404) throw new NotFoundError(`${what}: file does not exist`);
  if (!response.ok) throw await httpError(response, what);
  let bytes: Buffer;
  try {
    bytes = Buffer.from(await response.arrayBuffer());
  } catch (error) {
    throw transportError(error, what, remote.signal);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new InternalError(`${what}: the registry sent invalid JSON`);
  }
  return { manifest: validateManifest(parsed), bytes };
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** One GET of a blob into its partial file, starting at what the partial already holds. */
async function downloadOnce(
  remote: Remote,
  url: string,
  partial: string,
  layer: Descriptor,
  report: (completed: number, force?: boolean) => void,
): Promise<void> {
  const what = `pull ${shortDigest(layer.digest)}`;
  let offset = await fileSize(partial);
  if (offset >= layer.size) return; // complete (or overlong: verification decides)
  const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
  const response = await send(remote, url, { headers, redirect: "follow" }, what);
  if (response.status !== 200 && response.status !== 206) throw await httpError(response, what);
  if (response.status === 200) offset = 0; // the server ignored the range: start over
  if (!response.body) throw new InternalError(`${what}: empty response`);
  let completed = offset;
  report(completed, true);
  await mkdir(dirname(partial), { recursive: true });
  // Each chunk is on disk before the next is read, so after any failure the partial file holds
  // every byte received and the next attempt resumes from there.
  const file = await open(partial, offset > 0 ? "a" : "w");
  try {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      await file.write(chunk);
      report((completed += chunk.length));
    }
  } catch (error) {
    if (isFileSystemError(error)) throw error; // the store's fault, not the network's: no retry
    throw transportError(error, `${what}: download interrupted after ${completed} of ${layer.size} bytes`, remote.signal);
  } finally {
    await file.close();
  }
  report(completed, true);
}

/** An error of a file-system call (a write the disk refused); the network's errors carry no syscall. */
function isFileSystemError(error: unknown): boolean {
  return typeof (error as NodeJS.ErrnoException).syscall === "string";
}

function isDiskFull(error: unknown): boolean {
  const { code } = error as NodeJS.ErrnoException;
  return code === "ENOSPC" || code === "EDQUOT";
}

// Concurrent pulls of the same blob in this process take turns on its partial file; the second
// one then finds the blob committed, or resumes from where the first stopped.
const blobLocks = new Map<string, Promise<unknown>>();

async function withBlobLock<T>(key: string, work: () => Promise<T>): Promise<T> {
  for (let held = blobLocks.get(key); held; held = blobLocks.get(key)) await held.catch(() => {});
  const running = work();
  blobLocks.set(key, running);
  try {
    return await running;
  } finally {
    blobLocks.delete(key);
  }
}

/** Downloads a blob into its partial file, resuming after dropped connections. */
async function downloadBlob(store: ModelStore, remote: Remote, layer: Descriptor, onProgress: OnProgress): Promise<void> {
  const report = progressReporter(onProgress, `pulling ${shortDigest(layer.digest)}`, layer);
  const url = `${remote.repository}/blobs/${layer.digest}`;
  const partial = store.partialBlobPath(layer.digest);
  await withBlobLock(partial, async () => {
    for (let attempt = 1; !(await store.hasBlob(layer.digest)); attempt++) {
      try {
        return await downloadOnce(remote, url, partial, layer, report);
      } catch (error) {
        // A half download on a full disk would keep it full, and every other write of the store
        // would fail: it goes, and a later pull starts over.
        if (isDiskFull(error)) await rm(partial, { force: true });
        const retryable = error instanceof InternalError && !remote.signal?.aborted && attempt < MAX_DOWNLOAD_ATTEMPTS;
        if (!retryable) throw error;
      }
    }
    report(layer.size, true); // another pull committed it meanwhile
  });
}

async function verifyAndCommit(store: ModelStore, layer: Descriptor): Promise<void> {
  const partial = store.partialBlobPath(layer.digest);
  await withBlobLock(partial, async () => {
    if (await store.hasBlob(layer.digest)) return;
    const actual = await sha256File(partial);
    if (actual !== layer.digest) {
      await rm(partial, { force: true });
      throw new InternalError(`digest mismatch, file must be downloaded again: want ${layer.digest}, got ${actual}`);
    }
    await chmod(partial, BLOB_MODE); // written resumably, so read-only only once complete
    await rename(partial, store.blobPath(layer.digest));
    await store.recordVerifiedBlob(layer.digest);
  });
}

/** /api/pull. Progress: pulling manifest, pulling <digest>..., verifying, writing manifest, success. */
export async function pull(store: ModelStore, input: string, options: RegistryOptions, onProgress: OnProgress): Promise<void> {
  const name = parseModelName(input);
  const remote = openRemote(name, options, "pull");
  onProgress({ status: "pulling manifest" });
  const { manifest, bytes } = await fetchManifest(remote, name.tag);

  const downloaded: Descriptor[] = [];
  for (const layer of uniqueDescriptors(manifest)) {
    if (await store.hasBlob(layer.digest)) {
      onProgress({ status: `pulling ${shortDigest(layer.digest)}`, digest: layer.digest, total: layer.size, completed: layer.size });
      continue;
    }
    await downloadBlob(store, remote, layer, onProgress);
    downloaded.push(layer);
  }

  onProgress({ status: "verifying sha256 digest" });
  for (const layer of downloaded) await verifyAndCommit(store, layer);
  onProgress({ status: "writing manifest" });
  await store.writeManifest(name, bytes);
  onProgress({ status: "success" });
}

async function uploadBlob(store: ModelStore, remote: Remote, layer: Descriptor, onProgress: OnProgress): Promise<void> {
  const what = `push ${shortDigest(layer.digest)}`;
  const report = progressReporter(onProgress, `pushing ${shortDigest(layer.digest)}`, layer);
  const exists = await send(remote, `${remote.repository}/blobs/${layer.digest}`, { method: "HEAD" }, what);
  if (exists.ok) {
    report(layer.size, true);
    return;
  }
  const started = await send(remote, `${remote.repository}/blobs/uploads/`, { method: "POST" }, what);
  const location = started.headers.get("location");
  if (started.status !== 202 || !location) throw await httpError(started, `${what}: start upload`);

  const target = new URL(location, remote.repository);
  target.searchParams.set("digest", layer.digest);
  let completed = 0;
  report(completed, true);
  // A fresh stream per attempt: a PUT answered with a sign-in challenge is sent again from the start.
  const upload = (): RequestInit & { duplex: "half" } => {
    completed = 0;
    const body = createReadStream(store.blobPath(layer.digest)).pipe(countingStream((count) => report((completed += count))));
    return {
      method: "PUT",
      headers: { "Content-Type": "application/octet-stream", "Content-Length": String(layer.size) },
      body: Readable.toWeb(body) as ReadableStream<Uint8Array>,
      duplex: "half",
    };
  };
  const finished = await send(remote, target.toString(), upload, what);
  if (!finished.ok) throw await httpError(finished, what);
  report(completed, true);
}

/** /api/push: uploads missing blobs (HEAD to skip present ones), then the manifest. */
export async function push(store: ModelStore, input: string, options: RegistryOptions, onProgress: OnProgress): Promise<void> {
  const name = parseModelName(input);
  const remote = openRemote(name, options, "push");
  onProgress({ status: "retrieving manifest" });
  const stored = await store.readManifest(input);
  for (const layer of uniqueDescriptors(stored.manifest)) {
    if (!(await store.hasBlob(layer.digest))) throw new BadRequestError(`blob ${layer.digest} of '${input}' is missing from the store`);
    await uploadBlob(store, remote, layer, onProgress);
  }
  onProgress({ status: "pushing manifest" });
  const response = await send(
    remote,
    `${remote.repository}/manifests/${name.tag}`,
    { method: "PUT", headers: { "Content-Type": MANIFEST_MEDIA_TYPE }, body: new Uint8Array(stored.bytes) },
    "push manifest",
  );
  if (!response.ok) throw await httpError(response, "push manifest");
  onProgress({ status: "success" });
}
