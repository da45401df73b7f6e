// The model store, in Ollama's on-disk layout so that an existing Ollama store works as it is and
// Ollama can read what vllama writes:
//   manifests/<host>/<namespace>/<model>/<tag>   Docker v2 schema-2 manifest (JSON)
//   blobs/sha256-<hex>                           config and layer blobs

import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, readdir, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import { BadRequestError, InternalError, NotFoundError } from "../api/errors.js";
import type { ChatMessage, CreateRequest, ListModel, ModelDetails, ShowResponse } from "../api/ollama.js";
import { readGgufHeader } from "../gguf/reader.js";
import { createFromModelfile, createModel } from "./create.js";
import { digestHex, sha256Digest } from "./digest.js";
import { effectiveTemplate, ggufModelInfo, ggufTensorList, modelCapabilities } from "./gguf-info.js";
import { formatParametersText, renderModelfile } from "./modelfile.js";
import { displayName, manifestPathParts, nameKey, parseModelName, type ModelName } from "./names.js";
import { VerifiedBlobs, type BlobCheck } from "./verified-blobs.js";
import {
  LAYER_MEDIA_TYPES,
  type Descriptor,
  type Manifest,
  type ModelConfig,
  type ModelParameters,
  type OnProgress,
  type ResolvedModel,
} from "./types.js";

/** `VLLAMA_MODELS`, else `OLLAMA_MODELS`, else Ollama's default `~/.ollama/models`. */
export function defaultModelsDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.VLLAMA_MODELS || env.OLLAMA_MODELS || join(homedir(), ".ollama", "models");
}

/** A manifest as found on disk. */
export interface StoredManifest {
  name: ModelName;
  path: string;
  manifest: Manifest;
  bytes: Buffer; // the file as written: copies and pushes keep it byte-identical, so its digest holds
  digest: string; // hex sha256 of the manifest file
  modifiedAt: Date;
}

export interface BlobRef {
  digest: string; // "sha256:<hex>"
  size: number;
  existed: boolean; // the store already held this blob
}

/** What an interactive session has set over a model, for /api/show (Ollama's ShowRequest fields). */
export interface ShowOverrides {
  system?: string;
  options?: ModelParameters;
}

/** The text and JSON layers of a model, read from its blobs (license layers not yet joined). */
type ModelContents = Pick<ResolvedModel, "modelPath" | "projectorPath" | "template" | "system" | "parameters" | "messages"> & {
  license: string[];
};

const TEMP_PREFIX = ".vllama-tmp-";

/**
 * Blobs are written read-only: their content is their name and never changes, and the engine maps
 * a model's weights only from a file nobody can write without changing its mode first
 * (src/native/index.ts), since a mapped file truncated underneath kills the process with SIGBUS.
 */
export const BLOB_MODE = 0o444;

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === "ENOENT";
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((entry) => !entry.startsWith("."));
  } catch (error) {
    if (isMissing(error) || (error as NodeJS.ErrnoException).code === "ENOTDIR") return [];
    throw error;
  }
}

/** Writes `data` to `path` through a temp file and a rename, so readers never see a partial file. */
async function writeFileAtomic(path: string, data: string | Uint8Array, mode?: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = join(dirname(path), `${TEMP_PREFIX}${randomBytes(6).toString("hex")}`);
  try {
    await writeFile(temp, data, { mode });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

function notFound(input: string): NotFoundError {
  return new NotFoundError(`model '${input}' not found`);
}

/** A model whose manifest or blobs are not what they should be: it can be listed and deleted, not used. */
export class DamagedModelError extends InternalError {
  /** `blobPath`: the file found changed, for the engine to drop a model loaded from it (never shown). */
  constructor(readonly model: string, readonly reason: string, readonly blobPath?: string) {
    super(`model '${model}' is damaged: ${reason}; delete it and pull or create it again`);
  }
}

/** A manifest that cannot be read as one. */
export class DamagedManifestError extends DamagedModelError {
  constructor(model: string, why: string) {
    super(model, `its manifest is ${why}`);
  }
}

function isWellFormed(name: ModelName): boolean {
  try {
    parseModelName(`${name.host}/${name.namespace}/${name.model}:${name.tag}`);
    return true;
  } catch {
    return false;
  }
}

function damagedEntry(name: string, reason: string, modifiedAt: Date, size: number, digest: string): ListModel {
  const details = { parent_model: "", format: "", family: "", families: null, parameter_size: "", quantization_level: "" };
  return { name, model: name, modified_at: modifiedAt.toISOString(), size, digest, details, damaged: reason };
}

export function detailsFromConfig(config: ModelConfig): ModelDetails {
  return {
    parent_model: "",
    format: config.model_format || "gguf",
    family: config.model_family ?? "",
    families: config.model_families ?? null,
    parameter_size: config.model_type ?? "",
    quantization_level: config.file_type ?? "",
  };
}

/** The layers whose blobs are text (a template, a system prompt, a license) or JSON (parameters, messages). */
const TEXT_LAYERS = new Set<string>([LAYER_MEDIA_TYPES.template, LAYER_MEDIA_TYPES.system, LAYER_MEDIA_TYPES.license, LAYER_MEDIA_TYPES.params, LAYER_MEDIA_TYPES.messages]);

function blobJson<T>(digest: string, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new InternalError(`blob ${digest} is not valid JSON`);
  }
}

export class ModelStore {
  readonly manifestsDir: string;
  readonly blobsDir: string;
  /** A store whose models are listed and resolved after this one's, never written (the built-in demo). */
  private fallback?: ModelStore;
  private readonly verifiedBlobs: VerifiedBlobs;

  constructor(readonly dir: string = defaultModelsDir()) {
    this.manifestsDir = join(dir, "manifests");
    this.blobsDir = join(dir, "blobs");
    this.verifiedBlobs = new VerifiedBlobs(dir, (digest) => this.blobPath(digest));
  }

  /** Lists and resolves `store`'s models after this store's own; writes still go to this store only. */
  serveAlso(store: ModelStore): void {
    this.fallback = store;
  }

  // ---- blobs ----

  blobPath(digest: string): string {
    return join(this.blobsDir, `sha256-${digestHex(digest)}`);
  }

  /** Where a registry download accumulates before its digest is verified (resumable). */
  partialBlobPath(digest: string): string {
    return `${this.blobPath(digest)}-partial`;
  }

  async hasBlob(digest: string): Promise<boolean> {
    try {
      return (await stat(this.blobPath(digest))).isFile();
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }

  /** Stores a blob whose digest is known; a sha256 mismatch is a BadRequestError and leaves nothing behind. */
  async writeBlob(digest: string, source: AsyncIterable<Uint8Array>): Promise<BlobRef> {
    const expected = `sha256:${digestHex(digest)}`;
    return this.ingestBlob(source, expected);
  }

  /** Stores a stream as a blob named by its own sha256. */
  async importBlob(source: AsyncIterable<Uint8Array>): Promise<BlobRef> {
    return this.ingestBlob(source, undefined);
  }

  /** Stores a small in-memory blob (a template, params JSON, a config). */
  async addBlob(data: string | Uint8Array, mediaType: string): Promise<{ descriptor: Descriptor; existed: boolean }> {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    const digest = sha256Digest(bytes);
    const existed = await this.hasBlob(digest);
    if (!existed) {
      await writeFileAtomic(this.blobPath(digest), bytes, BLOB_MODE);
      await this.verifiedBlobs.record(digest);
    }
    return { descriptor: { mediaType, digest, size: bytes.length }, existed };
  }

  async readBlobText(digest: string): Promise<string> {
    try {
      return await readFile(this.blobPath(digest), "utf8");
    } catch (error) {
      if (isMissing(error)) throw new InternalError(`blob ${digest} is missing from the model store`);
      throw error;
    }
  }

  async readBlobJson<T>(digest: string): Promise<T> {
    return blobJson<T>(digest, await this.readBlobText(digest));
  }

  private async ingestBlob(source: AsyncIterable<Uint8Array>, expected: string | undefined): Promise<BlobRef> {
    await mkdir(this.blobsDir, { recursive: true });
    const temp = join(this.blobsDir, `${TEMP_PREFIX}${randomBytes(6).toString("hex")}`);
    const hash = createHash("sha256");
    let size = 0;
    try {
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            size += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(temp, { mode: BLOB_MODE }),
      );
      const digest = `sha256:${hash.digest("hex")}`;
      if (expected && digest !== expected) {
        throw new BadRequestError(`digest mismatch: expected ${expected}, got ${digest}`);
      }
      const existed = await this.hasBlob(digest);
      await rename(temp, this.blobPath(digest));
      await this.verifiedBlobs.record(digest);
      return { digest, size, existed };
    } finally {
      await rm(temp, { force: true });
    }
  }

  // ---- manifests ----

  /** Finds a manifest file by name, matching each path level case-insensitively as Ollama does. */
  private async findManifestPath(name: ModelName): Promise<string | undefined> {
    // The name as spelled first: one stat, where the walk below reads a directory per part.
    const exact = join(this.manifestsDir, ...manifestPathParts(name));
    if ((await stat(exact).catch(() => undefined))?.isFile()) return exact;
    let dir = this.manifestsDir;
    for (const part of manifestPathParts(name)) {
      const entries = await listDir(dir);
      const match = entries.includes(part) ? part : entries.find((e) => e.toLowerCase() === part.toLowerCase());
      if (match === undefined) return undefined;
      dir = join(dir, match);
    }
    return dir;
  }

  private async loadManifest(path: string): Promise<StoredManifest> {
    const [bytes, info] = await Promise.all([readFile(path), stat(path)]);
    const [host, namespace, model, tag] = relative(this.manifestsDir, path).split(sep) as [string, string, string, string];
    const damaged = (why: string) => new DamagedManifestError(displayName({ host, namespace, model, tag }), why);
    let manifest: Manifest;
    try {
      manifest = JSON.parse(bytes.toString("utf8")) as Manifest;
    } catch {
      throw damaged("not valid JSON");
    }
    if (!manifest || !Array.isArray(manifest.layers) || !manifest.config?.digest) throw damaged("not a model manifest");
    return {
      name: { host, namespace, model, tag },
      path,
      manifest,
      bytes,
      digest: digestHex(sha256Digest(bytes)),
      modifiedAt: info.mtime,
    };
  }

  /** Reads a model's manifest; NotFoundError `model 'x' not found` when there is none. */
  async readManifest(input: string): Promise<StoredManifest> {
    const path = await this.findManifestPath(parseModelName(input));
    if (!path) throw notFound(input);
    try {
      return await this.loadManifest(path);
    } catch (error) {
      if (isMissing(error) || (error as NodeJS.ErrnoException).code === "EISDIR") throw notFound(input);
      throw error;
    }
  }

  /**
   * Writes a manifest atomically, reusing the spelling of an existing model that differs only in
   * case. Pass the bytes as received (pull, copy) to keep the manifest's digest. Blobs only the
   * replaced manifest used are removed, as Ollama does.
   */
  async writeManifest(name: ModelName, manifest: Manifest | Uint8Array): Promise<void> {
    const existing = await this.findManifestPath(name);
    const replaced = existing ? await this.loadManifest(existing).catch(() => undefined) : undefined;
    const path = existing ?? join(this.manifestsDir, ...manifestPathParts(name));
    await writeFileAtomic(path, manifest instanceof Uint8Array ? manifest : JSON.stringify(manifest));
    if (replaced) await this.removeUnreferencedBlobs(replaced.manifest);
  }

  /** Every readable manifest in the store; malformed names and damaged files are skipped, as Ollama does. */
  async allManifests(): Promise<StoredManifest[]> {
    return (await this.scanManifests()).flatMap((entry) => ("manifest" in entry ? [entry.manifest] : []));
  }

  /** Every manifest file under a well-formed name: loaded, or the reason it cannot be. */
  private async scanManifests(): Promise<Array<{ manifest: StoredManifest } | { damaged: DamagedManifestError; modifiedAt: Date }>> {
    const found: Array<{ manifest: StoredManifest } | { damaged: DamagedManifestError; modifiedAt: Date }> = [];
    for (const host of await listDir(this.manifestsDir)) {
      for (const namespace of await listDir(join(this.manifestsDir, host))) {
        for (const model of await listDir(join(this.manifestsDir, host, namespace))) {
          for (const tag of await listDir(join(this.manifestsDir, host, namespace, model))) {
            const name = { host, namespace, model, tag };
            if (!isWellFormed(name)) continue;
            const path = join(this.manifestsDir, ...manifestPathParts(name));
            try {
              found.push({ manifest: await this.loadManifest(path) });
            } catch (error) {
              if (!(error instanceof DamagedManifestError)) continue; // gone meanwhile, or a directory
              found.push({ damaged: error, modifiedAt: (await stat(path)).mtime });
            }
          }
        }
      }
    }
    return found;
  }

  async readConfig(manifest: Manifest): Promise<ModelConfig> {
    return this.readBlobJson<ModelConfig>(manifest.config.digest);
  }

  // ---- the model-management operations ----

  /** /api/tags entries, newest first; a damaged model is listed with why (`damaged`), so that it can be deleted. */
  async list(): Promise<ListModel[]> {
    const entries: ListModel[] = (await this.fallback?.list()) ?? [];
    for (const entry of await this.scanManifests()) {
      if ("damaged" in entry) {
        entries.push(damagedEntry(entry.damaged.model, entry.damaged.reason, entry.modifiedAt, 0, ""));
        continue;
      }
      const stored = entry.manifest;
      const name = displayName(stored.name);
      const size = manifestSize(stored.manifest);
      const config = await this.readConfig(stored.manifest).catch(() => undefined);
      if (!config) {
        entries.push(damagedEntry(name, "its config blob is missing or not valid JSON", stored.modifiedAt, size, stored.digest));
        continue;
      }
      entries.push({ name, model: name, modified_at: stored.modifiedAt.toISOString(), size, digest: stored.digest, details: detailsFromConfig(config) });
    }
    return entries.sort((a, b) => b.modified_at.localeCompare(a.modified_at));
  }

  private async readContents(stored: StoredManifest): Promise<ModelContents> {
    const contents: Partial<ModelContents> & Pick<ModelContents, "parameters" | "messages" | "license"> = {
      parameters: {},
      messages: [],
      license: [],
    };
    // Every request resolves its model: the layers are read at once, then taken in order.
    const texts = await Promise.all(stored.manifest.layers.map((layer) => TEXT_LAYERS.has(layer.mediaType) ? this.readBlobText(layer.digest) : undefined));
    for (const [i, layer] of stored.manifest.layers.entries()) {
      const text = texts[i];
      switch (layer.mediaType) {
        case LAYER_MEDIA_TYPES.model:
          contents.modelPath = this.blobPath(layer.digest);
          break;
        case LAYER_MEDIA_TYPES.projector:
          contents.projectorPath = this.blobPath(layer.digest);
          break;
        case LAYER_MEDIA_TYPES.template:
          contents.template = text;
          break;
        case LAYER_MEDIA_TYPES.system:
          contents.system = text;
          break;
        case LAYER_MEDIA_TYPES.license:
          contents.license.push(text!);
          break;
        case LAYER_MEDIA_TYPES.params:
          contents.parameters = blobJson<ModelParameters>(layer.digest, text!);
          break;
        case LAYER_MEDIA_TYPES.messages:
          contents.messages = blobJson<ChatMessage[]>(layer.digest, text!);
          break;
      }
    }
    if (!contents.modelPath) throw new InternalError(`model '${displayName(stored.name)}' has no model layer`);
    return contents as ModelContents;
  }

  /** Records a blob whose digest was checked as it was written elsewhere (a pull's download). */
  recordVerifiedBlob(digest: string): Promise<void> {
    return this.verifiedBlobs.record(digest);
  }

  /** DamagedModelError unless every blob of the model is what its manifest names (`check`: when to hash). */
  private async checkBlobs(stored: StoredManifest, check: BlobCheck): Promise<void> {
    // Checked at once (every request checks its model's); the first damaged layer is named.
    const layers = uniqueDescriptors(stored.manifest);
    const problems = await Promise.all(layers.map((layer) => this.verifiedBlobs.problem(layer, check)));
    const i = problems.findIndex((problem) => problem !== undefined);
    if (i >= 0) throw new DamagedModelError(displayName(stored.name), problems[i]!, this.blobPath(layers[i]!.digest));
  }

  /**
   * Everything the engine needs to load and prompt a model. With `verify`, its blobs are checked
   * first (DamagedModelError): the engine asks `if-changed` before every use, so a blob truncated
   * or rewritten on disk is refused before it is mapped. Every request resolves its model, so the
   * reads go in rounds (the manifest, the blobs' checks, the layers): in a burst of 32 image
   * requests over HTTP each await waited its turn behind the other requests' bodies, and the
   * first request's resolve took 220 ms as about 12 awaits in a row, 80-135 ms as 4 (2 cores,
   * 2026-12-03).
   */
  async resolve(input: string, verify?: BlobCheck): Promise<ResolvedModel> {
    const stored = await this.readManifest(input).catch((error: unknown) => {
      if (this.fallback && error instanceof NotFoundError) return undefined;
      throw error;
    });
    if (!stored) return this.fallback!.resolve(input, verify);
    if (verify) await this.checkBlobs(stored, verify);
    const [config, contents] = await Promise.all([this.readConfig(stored.manifest), this.readContents(stored)]);
    const { license, ...rest } = contents;
    return {
      name: displayName(stored.name),
      ...rest,
      ...(license.length > 0 ? { license: license.join("\n") } : {}),
      digest: stored.digest,
      size: manifestSize(stored.manifest),
      modifiedAt: stored.modifiedAt,
      details: detailsFromConfig(config),
      config,
    };
  }

  /**
   * The /api/show response. `verbose` includes long GGUF arrays (vocabularies) and the tensor list.
   * As in Ollama, a session's `system` and `options` (what `/show` in `ollama run` sends) replace
   * the model's in `system` and the Modelfile; `parameters` stays the model's own. `verify` hashes
   * every blob first (`vllama show --verify`): a DamagedModelError names the first that differs.
   */
  async show(input: string, verbose = false, session: ShowOverrides = {}, verify = false): Promise<ShowResponse> {
    const model = await this.resolve(input, verify ? "always" : undefined);
    const gguf = await readGgufHeader(model.modelPath);
    const system = session.system || model.system;
    const modelfile = renderModelfile({
      from: model.projectorPath === undefined ? [model.modelPath] : [model.modelPath, model.projectorPath],
      template: model.template,
      system,
      parameters: { ...model.parameters, ...session.options },
      messages: model.messages,
      license: model.license === undefined ? [] : [model.license],
    });
    const header = `# Modelfile generated by "vllama show"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM ${model.name}\n\n`;
    return {
      modelfile: header + modelfile,
      parameters: formatParametersText(model.parameters),
      template: model.template ?? "",
      system: system ?? "",
      license: model.license ?? "",
      details: model.details,
      messages: model.messages,
      model_info: ggufModelInfo(gguf, verbose),
      ...(model.projectorPath !== undefined ? { projector_info: ggufModelInfo(await readGgufHeader(model.projectorPath), verbose) } : {}),
      ...(verbose ? { tensors: ggufTensorList(gguf) } : {}),
      capabilities: modelCapabilities(gguf, effectiveTemplate(gguf, model.template), model.projectorPath !== undefined),
      modified_at: model.modifiedAt.toISOString(),
    };
  }

  /** /api/copy: the destination gets a byte-identical manifest (blobs are shared). */
  async copy(source: string, destination: string): Promise<void> {
    const stored = await this.readManifest(source);
    const target = parseModelName(destination);
    if (nameKey(target) === nameKey(stored.name)) return;
    await this.writeManifest(target, stored.bytes);
  }

  /** /api/delete: removes the manifest, then the blobs no other manifest references. */
  async delete(input: string): Promise<void> {
    const path = await this.findManifestPath(parseModelName(input));
    if (!path) throw notFound(input);
    // A damaged manifest names no blobs it could be read for: it alone goes.
    const stored = await this.readManifest(input).catch((error: unknown) => {
      if (error instanceof DamagedManifestError) return undefined;
      throw error;
    });
    await rm(path);
    await this.removeEmptyParents(dirname(path));
    if (stored) await this.removeUnreferencedBlobs(stored.manifest);
  }

  /** Removes those of `candidate`'s blobs that no manifest in the store references. */
  private async removeUnreferencedBlobs(candidate: Manifest): Promise<void> {
    const referenced = new Set<string>();
    for (const other of await this.allManifests()) {
      for (const layer of [other.manifest.config, ...other.manifest.layers]) referenced.add(digestHex(layer.digest));
    }
    for (const layer of [candidate.config, ...candidate.layers]) {
      if (referenced.has(digestHex(layer.digest))) continue;
      await rm(this.blobPath(layer.digest), { force: true });
      await this.verifiedBlobs.forget(layer.digest);
    }
  }

  private async removeEmptyParents(dir: string): Promise<void> {
    for (let current = dir; current.startsWith(this.manifestsDir + sep); current = dirname(current)) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (or already gone): stop climbing
      }
    }
  }

  /** /api/create. Progress statuses follow Ollama's and end with `success`. */
  async create(request: CreateRequest, onProgress: OnProgress = () => {}): Promise<void> {
    await createModel(this, request, onProgress);
  }

  /** `vllama create NAME -f Modelfile`: relative FROM paths resolve against `baseDir`. */
  async createFromModelfile(name: string, text: string, baseDir: string, onProgress: OnProgress = () => {}): Promise<void> {
    await createFromModelfile(this, name, text, baseDir, onProgress);
  }
}

/** Descriptors once each: a blob can appear as config and layer, or twice as a layer. */
export function uniqueDescriptors(manifest: Manifest): Descriptor[] {
  const seen = new Map<string, Descriptor>();
  for (const d of [...manifest.layers, manifest.config]) if (!seen.has(d.digest)) seen.set(d.digest, d);
  return [...seen.values()];
}

/** Ollama counts the config blob too. */
export function manifestSize(manifest: Manifest): number {
  return [manifest.config, ...manifest.layers].reduce((sum, layer) => sum + layer.size, 0);
}
