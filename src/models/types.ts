// The store's own shapes: the manifest and config blobs as Ollama writes them, and what the
// engine needs of a model. The wire shapes they feed (/api/tags, /api/show, ...) are the API's.
import type { ChatMessage, ModelDetails, ProgressResponse } from "../api/ollama.js";

export const MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json";
export const CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json";

export const LAYER_MEDIA_TYPES = {
  model: "application/vnd.ollama.image.model",
  template: "application/vnd.ollama.image.template",
  system: "application/vnd.ollama.image.system",
  params: "application/vnd.ollama.image.params",
  messages: "application/vnd.ollama.image.messages",
  license: "application/vnd.ollama.image.license",
  adapter: "application/vnd.ollama.image.adapter",
  projector: "application/vnd.ollama.image.projector",
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string; // "sha256:<hex>"
  size: number;
}

/** Docker v2 schema-2 manifest, as Ollama writes it. */
export interface Manifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

/** The config blob Ollama writes (ConfigV2); unknown fields from newer Ollama versions are kept. */
export interface ModelConfig {
  model_format: string;
  model_family: string;
  model_families: string[];
  model_type: string; // parameter size label, "7.6B"
  file_type: string; // quantization label, "Q4_K_M"
  architecture: string;
  os: string;
  rootfs: { type: "layers"; diff_ids: string[] };
  [extra: string]: unknown;
}

/** Typed Modelfile parameters: numbers, booleans, and `stop` as a list. */
export type ModelParameters = Record<string, number | boolean | string | string[]>;

/** What the engine needs to load and prompt a model. */
export interface ResolvedModel {
  name: string; // short display form
  modelPath: string;
  projectorPath?: string;
  template?: string;
  system?: string;
  parameters: ModelParameters;
  messages: ChatMessage[];
  license?: string;
  digest: string;
  size: number;
  modifiedAt: Date;
  details: ModelDetails;
  config: ModelConfig;
}

/** Receives each line of the pull / push / create progress stream. */
export type OnProgress = (event: ProgressResponse) => void;
