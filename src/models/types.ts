// Wire shapes of the model-management endpoints, with Ollama's JSON field names, so the HTTP
// layer can return them as they are.

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

export interface ModelDetails {
  parent_model: string;
  format: string;
  family: string;
  families: string[] | null;
  parameter_size: string;
  quantization_level: string;
}

export interface ChatMessage {
  role: string;
  content: string;
}

/** Typed Modelfile parameters: numbers, booleans, and `stop` as a list. */
export type ModelParameters = Record<string, number | boolean | string | string[]>;

/** One entry of /api/tags. */
export interface ListedModel {
  name: string;
  model: string;
  modified_at: string;
  size: number;
  digest: string; // hex of the manifest's sha256, no prefix (as Ollama)
  details: ModelDetails;
}

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

export interface ShowResponse {
  modelfile: string;
  parameters: string;
  template: string;
  system: string;
  license: string;
  details: ModelDetails;
  messages: ChatMessage[];
  model_info: Record<string, unknown>;
  tensors?: Array<{ name: string; type: string; shape: number[] }>;
  capabilities: string[];
  modified_at: string;
}

/** /api/create request (Ollama's current form, not the legacy `modelfile` string). */
export interface CreateRequest {
  model: string;
  from?: string;
  files?: Record<string, string>;
  adapters?: Record<string, string>;
  template?: string;
  system?: string;
  parameters?: Record<string, unknown>;
  messages?: ChatMessage[];
  license?: string | string[];
  quantize?: string;
}

/** One line of the pull / push / create progress stream. */
export interface ProgressEvent {
  status: string;
  digest?: string;
  total?: number;
  completed?: number;
}

export type OnProgress = (event: ProgressEvent) => void;
