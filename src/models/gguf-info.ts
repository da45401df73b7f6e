// What the store derives from a GGUF header: the config blob's labels, /api/show's model_info,
// and the capabilities list.

import type { Capability } from "../api/ollama.js";
import {
  formatParameterSize,
  ggufArchitecture,
  ggufParameterCount,
  ggufQuantizationLabel,
} from "../gguf/reader.js";
import { ggmlTypeName } from "../gguf/ggml-types.js";
import { metadataString, type GgufArray, type GgufFile, type GgufValue } from "../gguf/values.js";
import type { ModelConfig } from "./types.js";

// Ollama reads arrays up to this length for /api/show unless `verbose`; longer ones (token lists,
// merges) show as null.
const MAX_SHOWN_ARRAY_LENGTH = 1024;

// Architectures llama.cpp runs as encoders (no text generation).
const EMBEDDING_ARCHITECTURES = new Set(["bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "neo-bert", "t5encoder"]);

export function configFromGguf(file: GgufFile, layerDigests: string[]): ModelConfig {
  const family = ggufArchitecture(file) ?? "unknown";
  return {
    model_format: "gguf",
    model_family: family,
    model_families: [family],
    model_type: formatParameterSize(ggufParameterCount(file)),
    file_type: ggufQuantizationLabel(file),
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: layerDigests },
  };
}

function plainArray(array: GgufArray): unknown[] {
  return array.value.map((item: unknown) =>
    typeof item === "bigint" ? Number(item) : typeof item === "object" ? plainArray(item as GgufArray) : item,
  );
}

function plainValue(value: GgufValue, verbose: boolean): unknown {
  if (value.type !== "array") return typeof value.value === "bigint" ? Number(value.value) : value.value;
  if (!verbose && value.value.length > MAX_SHOWN_ARRAY_LENGTH) return null;
  return plainArray(value);
}

/** /api/show's `model_info`: every GGUF key, plus `general.parameter_count` as Ollama adds it. */
export function ggufModelInfo(file: GgufFile, verbose: boolean): Record<string, unknown> {
  const info: Record<string, unknown> = {};
  for (const [key, value] of file.metadata) info[key] = plainValue(value, verbose);
  info["general.parameter_count"] = ggufParameterCount(file);
  return Object.fromEntries(Object.entries(info).sort(([a], [b]) => a.localeCompare(b)));
}

export function ggufTensorList(file: GgufFile): Array<{ name: string; type: string; shape: number[] }> {
  return file.tensors.map((t) => ({ name: t.name, type: ggmlTypeName(t.type) ?? String(t.type), shape: t.dims }));
}

export function isEmbeddingModel(file: GgufFile): boolean {
  const arch = ggufArchitecture(file) ?? "";
  return EMBEDDING_ARCHITECTURES.has(arch) || file.metadata.has(`${arch}.pooling_type`);
}

/** The prompt template a model uses: its TEMPLATE layer, else the GGUF's own chat template. */
export function effectiveTemplate(file: GgufFile, templateLayer: string | undefined): string {
  return templateLayer ?? metadataString(file, "tokenizer.chat_template") ?? "";
}

/**
 * Fill-in-the-middle prefix, suffix and middle tokens: the GGUF's keys, or the names llama.cpp
 * looks for when they are absent (llama-vocab.cpp; the names Qwen, Granite, DeepSeek, CodeLlama,
 * GLM-4.5 and Falcon-H1 coders use), so `insert` is listed exactly when a suffix is accepted.
 */
function hasFimTokens(file: GgufFile): boolean {
  if (["pre", "suf", "mid"].every((k) => file.metadata.has(`tokenizer.ggml.fim_${k}_token_id`))) return true;
  const tokens = file.metadata.get("tokenizer.ggml.tokens");
  if (tokens?.type !== "array" || tokens.itemType !== "string") return false;
  const names = new Set(tokens.value);
  return FIM_TOKEN_NAMES.some((triple) => triple.every((name) => names.has(name)));
}

const FIM_TOKEN_NAMES = [
  ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"],
  ["<fim-prefix>", "<fim-suffix>", "<fim-middle>"],
  ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"],
  ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"],
  ["<PRE>", "<SUF>", "<MID>"],
  ["▁<PRE>", "▁<SUF>", "▁<MID>"],
  ["<|code_prefix|>", "<|code_suffix|>", "<|code_middle|>"],
  ["<|prefix|>", "<|suffix|>", "<|middle|>"],
];

/** Ollama's capability rules, applied to both Go-template and Jinja templates. */
export function modelCapabilities(file: GgufFile, template: string, hasProjector: boolean): Capability[] {
  if (isEmbeddingModel(file)) return ["embedding"];
  const capabilities: Capability[] = ["completion"];
  const lower = template.toLowerCase();
  if (lower.includes("tools")) capabilities.push("tools");
  if (lower.includes("suffix") || hasFimTokens(file)) capabilities.push("insert");
  if (hasProjector) capabilities.push("vision");
  return capabilities;
}
