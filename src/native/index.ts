// Typed front of the native addon: argument checks that need the file system, and native error
// codes mapped to the project's typed errors. Engine code imports from here only.
import { constants, type Stats } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import os from "node:os";
import { BadRequestError, InternalError, NotFoundError, RpcWorkerError, VllamaError } from "../api/errors.js";
import { addonDir, loadAddon } from "./binding.js";
import type { BackendDevice, ContextOptions, GpuChoice, LoadModelOptions, NativeChatTemplates, NativeContext, NativeModel, NativeProjector } from "./types.js";

export type * from "./types.js";
export { FLASH_ATTENTION_MODES, GPU_CHOICES, KV_CACHE_TYPES } from "./types.js";

export interface BackendInfo {
  backend: "cuda" | "cpu";
  devices: BackendDevice[];
  systemInfo: string;
  /** The CPU backend library ggml loaded from the addon's folder ("" when linked in). */
  cpuBackendFile: string;
}

let backendInfo: BackendInfo | undefined;

/** Loads llama.cpp's backends once per process and picks CUDA or CPU. */
export function initBackend(gpu: GpuChoice = "auto"): BackendInfo {
  if (backendInfo && gpu === "auto") return backendInfo;
  backendInfo = mapErrors(() => loadAddon().init(gpu, addonDir));
  return backendInfo;
}

/** Native error codes that are the caller's fault; the rest are internal errors. */
const badRequestCodes = new Set(["ERR_MEDIA", "ERR_INVALID_ARG", "ERR_INVALID_TOKEN", "ERR_GRAMMAR", "ERR_SCHEMA", "ERR_MODEL_LOAD", "ERR_NO_GPU", "ERR_CHAT_TEMPLATE"]);

export function toTypedError(error: unknown): VllamaError {
  if (error instanceof VllamaError) return error;
  const e = error as { message?: string; code?: string };
  const message = e?.message ?? String(error);
  if (e?.code === "ERR_RPC_WORKER") return new RpcWorkerError(message);
  return badRequestCodes.has(e?.code ?? "") ? new BadRequestError(message) : new InternalError(message);
}

function mapErrors<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw toTypedError(error);
  }
}

/** How long opening a model file may take: a file on a hung network mount must not hold a request forever. */
const MODEL_FILE_OPEN_MS = 5_000;

/**
 * A model file is a regular file that starts with GGUF's magic. It is opened non-blocking, so a
 * FIFO named as a model (which held its request forever) is refused instead of waited on.
 */
async function checkGgufFile(path: string): Promise<Stats> {
  let handle;
  try {
    handle = await openWithin(path, MODEL_FILE_OPEN_MS);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new NotFoundError(`model file '${path}' not found`);
    throw new BadRequestError(`cannot read '${path}': ${(error as Error).message}`);
  }
  try {
    const stats = await handle.stat();
    if (stats.isDirectory()) throw new BadRequestError(`'${path}' is a directory, not a GGUF file`);
    if (!stats.isFile()) throw new BadRequestError(`'${path}' is not a regular file`);
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4), 0, 4, 0).catch((error: NodeJS.ErrnoException) => {
      throw new BadRequestError(`cannot read '${path}': ${error.message}`);
    });
    if (bytesRead < 4 || buffer.toString("latin1") !== "GGUF") throw new BadRequestError(`'${path}' is not a GGUF file`);
    return stats;
  } finally {
    await handle.close();
  }
}

/** Opens read-only and non-blocking, or fails after `ms`; a handle that opens later is closed. */
function openWithin(path: string, ms: number): Promise<FileHandle> {
  const opening = open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`opening it took more than ${ms / 1000}s`));
      void opening.then((late) => late.close(), () => undefined);
    }, ms);
    opening.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}

/**
 * Whether the file can be changed without first changing its mode: writable by anyone (its owner
 * included), or owned by another user (who may change the mode). Mapped weights of a file
 * truncated underneath are a SIGBUS that kills the process (issue 13, finding 9), and llama.cpp
 * cannot catch it, so only a read-only file is mapped: the store's blobs (src/models/store.ts
 * writes them 0444); any other (a GGUF path, blobs Ollama wrote 0644) is read into memory, which
 * costs its load time and its pages no longer being shared with the page cache. Root can still
 * truncate a read-only file.
 */
function changeable(stats: Stats): boolean {
  return (stats.mode & 0o222) !== 0 || (process.getuid !== undefined && stats.uid !== process.getuid());
}

export async function loadModel(path: string, options: LoadModelOptions & { gpu?: GpuChoice } = {}): Promise<NativeModel> {
  const { backend } = initBackend(options.gpu ?? "auto");
  const stats = await checkGgufFile(path);
  // With RPC workers every layer goes to a device (the workers and any local GPU), as llama.cpp's
  // --rpc is used; num_gpu below the layer count keeps the first layers on the local CPU.
  const offload = backend !== "cpu" || (options.rpc?.length ?? 0) > 0;
  const gpuLayers = options.gpuLayers ?? (offload ? -1 : 0);
  const useMmap = options.useMmap ?? !changeable(stats);
  try {
    return await loadAddon().loadModel(path, { ...options, gpuLayers, useMmap });
  } catch (error) {
    throw toTypedError(error);
  }
}

export async function createContext(model: NativeModel, options: ContextOptions): Promise<NativeContext> {
  try {
    return await model.createContext({ threads: os.availableParallelism(), ...options });
  } catch (error) {
    throw toTypedError(error);
  }
}

/** GBNF for a JSON schema, by llama.cpp's own converter, on a thread of its own (see addon.cpp). */
export async function jsonSchemaToGrammar(schema: unknown): Promise<string> {
  try {
    return await loadAddon().jsonSchemaToGrammar(JSON.stringify(schema));
  } catch (error) {
    throw toTypedError(error);
  }
}

/**
 * Up to this many characters a text is tokenized on the JS thread, beyond it on a libuv worker
 * thread: 16 KiB of plain text took 18 ms with Qwen2's tokenizer and a 10 MB prompt 12 s (demo
 * model, 2 shared cores, 2026-12-01); a worker thread costs a hop, and short prompts should not
 * queue behind model loads on libuv's pool.
 */
export const SYNC_TOKENIZE_MAX_CHARS = 4096;

/** A model's tokens for `text`, off the JS thread when the text is long. */
export async function tokenizeText(
  model: Pick<NativeModel, "tokenize" | "tokenizeAsync">, text: string, addSpecial: boolean, parseSpecial: boolean,
): Promise<Int32Array> {
  try {
    return text.length > SYNC_TOKENIZE_MAX_CHARS ? await model.tokenizeAsync(text, addSpecial, parseSpecial) : model.tokenize(text, addSpecial, parseSpecial);
  } catch (error) {
    throw toTypedError(error);
  }
}

/** Loads a model's projector (mmproj GGUF); `threads` should be its contexts' (num_thread). */
export async function loadProjector(model: NativeModel, path: string, threads = os.availableParallelism()): Promise<NativeProjector> {
  await checkGgufFile(path);
  try {
    return await model.loadProjector(path, { threads });
  } catch (error) {
    throw toTypedError(error);
  }
}

/** llama.cpp's chat library over a Jinja template; a template it cannot parse is the request's fault (400). */
export async function chatTemplates(source: string, bosToken: string, eosToken: string): Promise<NativeChatTemplates> {
  try {
    return await loadAddon().chatTemplates(source, bosToken, eosToken);
  } catch (error) {
    throw toTypedError(error);
  }
}

export function liveNativeObjects(): { models: number; contexts: number; projectors: number } {
  return loadAddon().liveObjects();
}
