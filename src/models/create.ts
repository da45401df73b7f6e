// /api/create and `vllama create -f`: a new manifest from a GGUF file, uploaded blobs, or an
// existing model, with TEMPLATE / SYSTEM / PARAMETER / MESSAGE / LICENSE layers on top.

import { createReadStream, existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join as joinPath, resolve as resolvePath } from "node:path";
import { BadRequestError, NotImplementedError } from "../api/errors.js";
import { ChatRoleSchema, type ChatMessage, type CreateRequest } from "../api/ollama.js";
import { readGgufHeader } from "../gguf/reader.js";
import { metadataString, type GgufFile } from "../gguf/values.js";
import { configFromGguf } from "./gguf-info.js";
import { parseModelfile, typeParameters } from "./modelfile.js";
import { parseModelName } from "./names.js";
import type { ModelStore } from "./store.js";
import {
  CONFIG_MEDIA_TYPE,
  LAYER_MEDIA_TYPES,
  MANIFEST_MEDIA_TYPE,
  type Descriptor,
  type ModelConfig,
  type ModelParameters,
  type OnProgress,
} from "./types.js";

/** The layers and config a new model starts from, before the request's own layers. */
interface BaseModel {
  layers: Descriptor[];
  config: ModelConfig;
}

function expandHome(path: string): string {
  return path === "~" || path.startsWith("~/") ? homedir() + path.slice(1) : path;
}

/** `from` names a file when it looks like a path, or is an existing `.gguf` file; else a model. */
function ggufPathOf(from: string, baseDir: string): string | undefined {
  const path = resolvePath(baseDir, expandHome(from));
  return /^(\/|\.\.?\/|~)/.test(from) || (/\.gguf$/i.test(from) && existsSync(path)) ? path : undefined;
}

function isProjector(file: GgufFile): boolean {
  return metadataString(file, "general.architecture") === "clip" || metadataString(file, "general.type") === "mmproj";
}

function layerStatus(digest: string, existed: boolean): string {
  return `${existed ? "using existing" : "creating new"} layer ${digest}`;
}

async function baseFromGgufPath(store: ModelStore, path: string, onProgress: OnProgress): Promise<BaseModel> {
  onProgress({ status: "parsing GGUF" });
  const header = await readGgufHeader(path);
  if (isProjector(header)) throw new BadRequestError(`${path} is a vision projector, not a model`);
  const blob = await store.importBlob(createReadStream(path));
  onProgress({ status: layerStatus(blob.digest, blob.existed) });
  const layer = { mediaType: LAYER_MEDIA_TYPES.model, digest: blob.digest, size: blob.size };
  return { layers: [layer], config: configFromGguf(header, []) };
}

/**
 * The GGUF files a local `from` names: the file, or each `.gguf` file of a folder (a vision
 * model's folder holds the model and its projector). A path that cannot be read is returned as
 * is, for the reader's error.
 */
async function ggufFilesAt(path: string): Promise<string[]> {
  const isFolder = await stat(path).then((s) => s.isDirectory(), () => false);
  if (!isFolder) return [path];
  const names = (await readdir(path)).filter((name) => /\.gguf$/i.test(name)).sort();
  if (names.length === 0) throw new NotImplementedError(`cannot create from ${path}: the folder holds no GGUF file (convert safetensors to GGUF first)`);
  return names.map((name) => joinPath(path, name));
}

/** Each GGUF file stored as a blob, by its path: a create request's `files`. */
async function storeGgufFiles(store: ModelStore, files: string[]): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const file of files) digests[file] = (await store.importBlob(createReadStream(file))).digest;
  return digests;
}

/** A local GGUF file, or a folder of a model and its projector, as the base. */
async function baseFromLocalPath(store: ModelStore, path: string, onProgress: OnProgress): Promise<BaseModel> {
  const files = await ggufFilesAt(path);
  if (files.length === 1) return baseFromGgufPath(store, files[0]!, onProgress);
  return baseFromFiles(store, await storeGgufFiles(store, files), onProgress);
}

async function baseFromFiles(store: ModelStore, files: Record<string, string>, onProgress: OnProgress): Promise<BaseModel> {
  let model: { layer: Descriptor; header: GgufFile } | undefined;
  const projectors: Descriptor[] = [];
  for (const [fileName, digest] of Object.entries(files)) {
    if (!/\.gguf$/i.test(fileName)) {
      throw new NotImplementedError(`cannot create from '${fileName}': only GGUF files are supported (convert safetensors to GGUF first)`);
    }
    if (!(await store.hasBlob(digest))) throw new BadRequestError(`blob ${digest} for '${fileName}' not found: upload it first`);
    onProgress({ status: "parsing GGUF" });
    const header = await readGgufHeader(store.blobPath(digest));
    const size = header.fileSize;
    if (isProjector(header)) {
      projectors.push({ mediaType: LAYER_MEDIA_TYPES.projector, digest, size });
    } else if (model) {
      throw new BadRequestError(`more than one model GGUF in files ('${fileName}')`);
    } else {
      model = { layer: { mediaType: LAYER_MEDIA_TYPES.model, digest, size }, header };
    }
    onProgress({ status: layerStatus(digest, true) });
  }
  if (!model) throw new BadRequestError("files contain no model GGUF");
  return { layers: [model.layer, ...projectors], config: configFromGguf(model.header, []) };
}

async function baseFromModel(store: ModelStore, from: string, onProgress: OnProgress): Promise<BaseModel> {
  const stored = await store.readManifest(from);
  for (const layer of stored.manifest.layers) onProgress({ status: layerStatus(layer.digest, true) });
  return { layers: [...stored.manifest.layers], config: await store.readConfig(stored.manifest) };
}

async function loadBase(store: ModelStore, request: CreateRequest, onProgress: OnProgress): Promise<BaseModel> {
  const hasFiles = request.files !== undefined && Object.keys(request.files).length > 0;
  if (request.adapters && Object.keys(request.adapters).length > 0) throw new NotImplementedError("adapters are not supported by vllama");
  if (request.from && hasFiles) throw new BadRequestError("use either 'from' or 'files', not both");
  if (hasFiles) return baseFromFiles(store, request.files!, onProgress);
  if (!request.from) throw new BadRequestError("neither 'from' nor 'files' was specified");
  const path = ggufPathOf(request.from, process.cwd());
  if (path) return baseFromLocalPath(store, path, onProgress);
  return baseFromModel(store, request.from, onProgress);
}

function validateMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages)) throw new BadRequestError("messages must be a list");
  return messages.map((message, index) => {
    const { role, content } = (message ?? {}) as { role?: unknown; content?: unknown };
    const knownRole = ChatRoleSchema.safeParse(role);
    if (!knownRole.success) {
      throw new BadRequestError(`messages[${index}].role must be one of ${ChatRoleSchema.options.join(", ")}`);
    }
    if (typeof content !== "string") throw new BadRequestError(`messages[${index}].content must be a string`);
    return { role: knownRole.data, content };
  });
}

/** Applies the request's own layers to the base: one layer per kind replaces the base's. */
class LayerEditor {
  constructor(
    private readonly store: ModelStore,
    readonly layers: Descriptor[],
    private readonly onProgress: OnProgress,
  ) {}

  async replace(mediaType: string, contents: string[]): Promise<void> {
    const kept = this.layers.filter((layer) => layer.mediaType !== mediaType);
    this.layers.splice(0, this.layers.length, ...kept);
    for (const content of contents) {
      const { descriptor, existed } = await this.store.addBlob(content, mediaType);
      this.onProgress({ status: layerStatus(descriptor.digest, existed) });
      this.layers.push(descriptor);
    }
  }

  async currentParameters(): Promise<ModelParameters> {
    const layer = this.layers.find((l) => l.mediaType === LAYER_MEDIA_TYPES.params);
    return layer ? this.store.readBlobJson<ModelParameters>(layer.digest) : {};
  }
}

function checkQuantize(request: CreateRequest, config: ModelConfig): void {
  if (!request.quantize || request.quantize.toUpperCase() === config.file_type.toUpperCase()) return;
  throw new NotImplementedError(`quantizing to ${request.quantize} is not supported (the source is ${config.file_type})`);
}

export async function createModel(store: ModelStore, request: CreateRequest, onProgress: OnProgress): Promise<void> {
  const name = parseModelName(request.model);
  // Validate everything cheap before touching the store.
  const parameters = request.parameters === undefined ? undefined : typeParameters(request.parameters);
  const messages = request.messages === undefined ? undefined : validateMessages(request.messages);
  const base = await loadBase(store, request, onProgress);
  checkQuantize(request, base.config);

  const editor = new LayerEditor(store, base.layers, onProgress);
  if (request.template !== undefined) await editor.replace(LAYER_MEDIA_TYPES.template, [request.template]);
  if (request.system !== undefined) await editor.replace(LAYER_MEDIA_TYPES.system, [request.system]);
  if (request.license !== undefined) {
    await editor.replace(LAYER_MEDIA_TYPES.license, Array.isArray(request.license) ? request.license : [request.license]);
  }
  if (parameters !== undefined) {
    const merged = { ...(await editor.currentParameters()), ...parameters };
    await editor.replace(LAYER_MEDIA_TYPES.params, [JSON.stringify(merged)]);
  }
  if (messages !== undefined) await editor.replace(LAYER_MEDIA_TYPES.messages, [JSON.stringify(messages)]);

  const config = { ...base.config, rootfs: { type: "layers" as const, diff_ids: editor.layers.map((l) => l.digest) } };
  const { descriptor: configDescriptor } = await store.addBlob(JSON.stringify(config), CONFIG_MEDIA_TYPE);
  onProgress({ status: "writing manifest" });
  await store.writeManifest(name, {
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config: configDescriptor,
    layers: editor.layers,
  });
  onProgress({ status: "success" });
}

export async function createFromModelfile(
  store: ModelStore,
  model: string,
  text: string,
  baseDir: string,
  onProgress: OnProgress,
): Promise<void> {
  const file = parseModelfile(text);
  await createModel(
    store,
    {
      model,
      ...(await fromOfModelfile(store, file.from, baseDir)),
      template: file.template,
      system: file.system,
      parameters: Object.keys(file.parameters).length > 0 ? file.parameters : undefined,
      messages: file.messages.length > 0 ? file.messages : undefined,
      license: file.license.length > 0 ? file.license : undefined,
    },
    onProgress,
  );
}

/**
 * A Modelfile's FROM lines as a create request's source: one model by name, one local GGUF path
 * (file or folder), or several local files (a model and its projector, told apart by the
 * projector's GGUF architecture), stored as blobs and named in `files`.
 */
async function fromOfModelfile(
  store: ModelStore,
  from: string[],
  baseDir: string,
): Promise<Pick<CreateRequest, "from" | "files">> {
  const paths = from.map((f) => ggufPathOf(f, baseDir));
  if (from.length === 1) return { from: paths[0] ?? from[0] };
  const named = from.find((_, i) => paths[i] === undefined);
  if (named !== undefined) throw new BadRequestError(`FROM ${named}: with several FROM lines, each names a GGUF file or folder (a model and its projector)`);
  return { files: await storeGgufFiles(store, (await Promise.all((paths as string[]).map(ggufFilesAt))).flat()) };
}
