// Random-weight models with the shapes of real architectures and their real tokenizers: speed
// depends on shapes, not on weight values, so these stand in for real models in benchmarks and
// tests, and generate in seconds from llama.cpp's own vocabulary files.

import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BadRequestError, NotFoundError } from "../api/errors.js";
import { elementCount, f32ToF16, GgmlType, Q8_0_BLOCK_BYTES, Q8_0_BLOCK_SIZE, writeQ8_0Block, type GgmlTypeId } from "./ggml-types.js";
import { LLAMA_FILE_TYPE, readGgufHeader } from "./reader.js";
import { gguf, type GgufValue } from "./values.js";
import { writeGguf, type GgufTensorSource } from "./writer.js";

export type SyntheticVocab = "llama-spm" | "llama-bpe" | "qwen2";
export type SyntheticArch = "llama" | "qwen2" | "qwen2vl" | "qwen3vl" | "gemma3";
export type SyntheticWeightType = "f32" | "f16" | "q8_0";

export interface SyntheticShape {
  arch: SyntheticArch;
  /** Tokenizer taken from llama.cpp's `models/ggml-vocab-<vocab>.gguf`; it also fixes n_vocab. */
  vocab: SyntheticVocab;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  contextLength: number;
  ropeFreqBase: number;
  rmsNormEps: number;
  /** No output.weight: llama.cpp reuses token_embd for the output projection. */
  tiedOutput: boolean;
  /** M-RoPE (qwen2vl, qwen3vl): rotary pairs of a head per position dimension (t, y, x, unused), summing to head width / 2. */
  ropeSections?: [number, number, number, number];
  /**
   * Qwen3-VL's deepstack: an image row carries this many more embeddings beside the main one, each
   * added to the output of one of the first layers, so rows are nEmbd x (1 + deepstackLayers) wide.
   */
  deepstackLayers?: number;
  /** Gemma 3's local attention: a token sees only this many positions back in a local layer (Gemma 3: 1,024). */
  slidingWindow?: number;
  /** Every swaPattern-th layer is global, the others local (Gemma 3: 6, 5 local layers to 1 global). */
  swaPattern?: number;
}

const LLAMA_SPM = { arch: "llama", vocab: "llama-spm", ropeFreqBase: 10000, rmsNormEps: 1e-5, tiedOutput: false } as const;
const LLAMA_BPE = { arch: "llama", vocab: "llama-bpe", ropeFreqBase: 500000, rmsNormEps: 1e-5, tiedOutput: false } as const;
const QWEN2 = { arch: "qwen2", vocab: "qwen2", ropeFreqBase: 1000000, rmsNormEps: 1e-6, tiedOutput: true } as const;

export const SYNTHETIC_PRESETS = {
  /** Shape of stories110M. */
  llama110m: { ...LLAMA_SPM, nEmbd: 768, nLayer: 12, nHead: 12, nHeadKv: 12, nFf: 2048, contextLength: 2048 },
  /** Shape of Qwen2.5-0.5B. */
  qwen05b: { ...QWEN2, nEmbd: 896, nLayer: 24, nHead: 14, nHeadKv: 2, nFf: 4864, contextLength: 32768 },
  /** Shape of Llama-3.1-8B (without its rope scaling). */
  llama8b: { ...LLAMA_BPE, nEmbd: 4096, nLayer: 32, nHead: 32, nHeadKv: 8, nFf: 14336, contextLength: 131072 },
  "tiny-llama": { ...LLAMA_SPM, nEmbd: 64, nLayer: 2, nHead: 4, nHeadKv: 2, nFf: 128, contextLength: 2048 },
  "tiny-qwen2": { ...QWEN2, nEmbd: 64, nLayer: 2, nHead: 4, nHeadKv: 2, nFf: 128, contextLength: 2048 },
  /**
   * tiny-qwen2 as Qwen2-VL's language model: M-RoPE, sections in Qwen2-VL's proportions (16, 24, 24 of
   * 64). Its own output matrix: with tied random embeddings greedy decoding repeats the last token.
   */
  "tiny-qwen2vl": { ...QWEN2, arch: "qwen2vl", nEmbd: 64, nLayer: 2, nHead: 4, nHeadKv: 2, nFf: 128, contextLength: 2048, ropeSections: [2, 3, 3, 0], tiedOutput: false },
  /**
   * Gemma 3's language model, shrunk: per-head Q and K norms, norms after attention and after the
   * feed-forward too, and layer 0 of 2 local with a 16-position window, so a test prompt with an
   * image reaches past it. The SentencePiece vocabulary of the llama presets stands in for Gemma's.
   */
  "tiny-gemma3": {
    ...LLAMA_SPM, arch: "gemma3", nEmbd: 64, nLayer: 2, nHead: 4, nHeadKv: 2, nFf: 128, contextLength: 2048,
    ropeFreqBase: 1000000, rmsNormEps: 1e-6, slidingWindow: 16, swaPattern: 2,
  },
  /**
   * Qwen3-VL's language model, shrunk: Qwen3's per-head Q and K norms and no QKV biases, interleaved
   * M-RoPE, and image rows 3 x 64 wide, whose two extra embeddings go into layers 0 and 1 of 3
   * (Qwen3-VL-2B: 3 of its 28 layers).
   */
  "tiny-qwen3vl": {
    ...QWEN2, arch: "qwen3vl", nEmbd: 64, nLayer: 3, nHead: 4, nHeadKv: 2, nFf: 128, contextLength: 2048,
    ropeFreqBase: 5000000, ropeSections: [2, 3, 3, 0], deepstackLayers: 2, tiedOutput: false,
  },
} satisfies Record<string, SyntheticShape>;

export type SyntheticPreset = keyof typeof SYNTHETIC_PRESETS;

export function isSyntheticPreset(name: string): name is SyntheticPreset {
  return Object.hasOwn(SYNTHETIC_PRESETS, name);
}

export const CHATML_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}" +
  "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}" +
  "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export const LLAMA3_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}" +
  "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

/**
 * Zephyr-style turns for the SentencePiece vocabulary, which has no ChatML special tokens: the
 * role markers tokenize as plain text and each turn ends with the real `</s>` (EOS).
 */
export const SPM_CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}" +
  "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

export const DEFAULT_CHAT_TEMPLATES: Record<SyntheticVocab, string> = {
  "llama-spm": SPM_CHAT_TEMPLATE,
  "llama-bpe": LLAMA3_TEMPLATE,
  qwen2: CHATML_TEMPLATE,
};

export interface SyntheticModelOptions {
  preset?: SyntheticPreset;
  shape?: SyntheticShape;
  type: SyntheticWeightType;
  out: string;
  /** A template, or true for the vocabulary's default (DEFAULT_CHAT_TEMPLATES); none when absent. */
  chatTemplate?: string | true;
  seed?: number;
  /** general.name; defaults to the preset name or "synthetic-<arch>". */
  name?: string;
  /**
   * Token id -> text written over the vocabulary's entry as a control token: a later release's
   * added tokens in the bundle's placeholder slots (Qwen2.5-Coder's FIM tokens over Qwen2's [PAD]s).
   */
  controlTokens?: Record<number, string>;
}

export interface SyntheticModelSummary {
  path: string;
  shape: SyntheticShape;
  nVocab: number;
  tensorCount: number;
  parameterCount: number;
}

const WEIGHT_TYPES: Record<SyntheticWeightType, { ggml: GgmlTypeId; fileType: number }> = {
  f32: { ggml: GgmlType.F32, fileType: LLAMA_FILE_TYPE.F32 },
  f16: { ggml: GgmlType.F16, fileType: LLAMA_FILE_TYPE.F16 },
  q8_0: { ggml: GgmlType.Q8_0, fileType: LLAMA_FILE_TYPE.Q8_0 },
};

/** The llama.cpp source tree that `npm run build:native` clones into deps/. */
export function llamaCppSourceDir(): string {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  const depsDir = path.join(root, "deps");
  const candidates = existsSync(depsDir) ? readdirSync(depsDir).filter((name) => name.startsWith("llama.cpp-")).sort() : [];
  const found = candidates.map((name) => path.join(depsDir, name)).find((dir) => existsSync(path.join(dir, "models")));
  if (!found) {
    throw new NotFoundError(`no llama.cpp source tree under ${depsDir}: run \`npm run build:native\` to fetch it`);
  }
  return found;
}

export function vocabPath(vocab: SyntheticVocab): string {
  return path.join(llamaCppSourceDir(), "models", `ggml-vocab-${vocab}.gguf`);
}

async function tokenizerMetadata(vocab: SyntheticVocab): Promise<Array<[string, GgufValue]>> {
  const file = await readGgufHeader(vocabPath(vocab));
  // The vocabulary files carry their own chat template; a synthetic model gets one only on request.
  return [...file.metadata].filter(([key]) => key.startsWith("tokenizer.") && key !== "tokenizer.chat_template");
}

function architectureMetadata(shape: SyntheticShape, name: string, fileType: number): Array<[string, GgufValue]> {
  const a = shape.arch;
  const metadata: Array<[string, GgufValue]> = [
    ["general.architecture", gguf.string(a)],
    ["general.name", gguf.string(name)],
    ["general.file_type", gguf.uint32(fileType)],
    [`${a}.context_length`, gguf.uint32(shape.contextLength)],
    [`${a}.embedding_length`, gguf.uint32(shape.nEmbd)],
    [`${a}.block_count`, gguf.uint32(shape.nLayer)],
    [`${a}.feed_forward_length`, gguf.uint32(shape.nFf)],
    [`${a}.attention.head_count`, gguf.uint32(shape.nHead)],
    [`${a}.attention.head_count_kv`, gguf.uint32(shape.nHeadKv)],
    [`${a}.attention.layer_norm_rms_epsilon`, gguf.float32(shape.rmsNormEps)],
    [`${a}.rope.freq_base`, gguf.float32(shape.ropeFreqBase)],
  ];
  if (a === "llama") metadata.push([`${a}.rope.dimension_count`, gguf.uint32(shape.nEmbd / shape.nHead)]);
  if (shape.ropeSections) metadata.push([`${a}.rope.dimension_sections`, gguf.array("int32", shape.ropeSections)]);
  if (shape.deepstackLayers) metadata.push([`${a}.n_deepstack_layers`, gguf.uint32(shape.deepstackLayers)]);
  if (shape.slidingWindow) metadata.push([`${a}.attention.sliding_window`, gguf.uint32(shape.slidingWindow)]);
  if (shape.swaPattern) metadata.push([`${a}.attention.sliding_window_pattern`, gguf.uint32(shape.swaPattern)]);
  return metadata;
}

type TensorFill = "ones" | "random";

export interface TensorPlan {
  name: string;
  dims: number[];
  type: GgmlTypeId;
  fill: TensorFill;
}

/** Tensor names and ggml dims (ne0 first) as llama.cpp's src/models/<arch>.cpp creates them. */
function tensorPlans(shape: SyntheticShape, nVocab: number, weightType: GgmlTypeId): TensorPlan[] {
  const { nEmbd, nFf } = shape;
  const headWidth = nEmbd / shape.nHead;
  const nEmbdKv = headWidth * shape.nHeadKv;
  // Norms and biases stay F32, as llama.cpp's own quantizer leaves 1-d tensors.
  const norm = (name: string): TensorPlan => ({ name, dims: [nEmbd], type: GgmlType.F32, fill: "ones" });
  const bias = (name: string, n: number): TensorPlan => ({ name, dims: [n], type: GgmlType.F32, fill: "random" });
  const weight = (name: string, ne0: number, ne1: number): TensorPlan => ({ name, dims: [ne0, ne1], type: weightType, fill: "random" });

  const plans = [weight("token_embd.weight", nEmbd, nVocab)];
  for (let i = 0; i < shape.nLayer; i++) {
    const blk = `blk.${i}`;
    plans.push(
      norm(`${blk}.attn_norm.weight`),
      weight(`${blk}.attn_q.weight`, nEmbd, nEmbd),
      weight(`${blk}.attn_k.weight`, nEmbd, nEmbdKv),
      weight(`${blk}.attn_v.weight`, nEmbd, nEmbdKv),
    );
    if (shape.arch === "qwen2" || shape.arch === "qwen2vl") {
      plans.push(bias(`${blk}.attn_q.bias`, nEmbd), bias(`${blk}.attn_k.bias`, nEmbdKv), bias(`${blk}.attn_v.bias`, nEmbdKv));
    }
    if (shape.arch === "qwen3vl" || shape.arch === "gemma3") {
      const headNorm = (name: string): TensorPlan => ({ name, dims: [headWidth], type: GgmlType.F32, fill: "ones" });
      plans.push(headNorm(`${blk}.attn_q_norm.weight`), headNorm(`${blk}.attn_k_norm.weight`));
    }
    plans.push(weight(`${blk}.attn_output.weight`, nEmbd, nEmbd));
    if (shape.arch === "gemma3") plans.push(norm(`${blk}.post_attention_norm.weight`));
    plans.push(
      norm(`${blk}.ffn_norm.weight`),
      weight(`${blk}.ffn_gate.weight`, nEmbd, nFf),
      weight(`${blk}.ffn_up.weight`, nEmbd, nFf),
      weight(`${blk}.ffn_down.weight`, nFf, nEmbd),
    );
    if (shape.arch === "gemma3") plans.push(norm(`${blk}.post_ffw_norm.weight`));
  }
  plans.push(norm("output_norm.weight"));
  if (!shape.tiedOutput) plans.push(weight("output.weight", nEmbd, nVocab));
  return plans;
}

const WEIGHT_STD = 0.02;
// Uniform on [-a, a] has standard deviation a / sqrt(3).
const UNIFORM_HALF_WIDTH = WEIGHT_STD * Math.sqrt(3);
// Int8 quants uniform over [-128, 127] have standard deviation ~73.9; scale them to WEIGHT_STD.
const Q8_0_SCALE = WEIGHT_STD / 73.9;
const CHUNK_ELEMENTS = 1 << 18;

/** xorshift32: fast, seedable, and plenty random for weights nobody reads. */
function xorshift32(seed: number): () => number {
  let state = seed >>> 0 || 0x9e3779b9;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
}

/** A distinct, well-mixed stream per tensor, so each tensor's values do not depend on write order. */
export function tensorSeed(seed: number, index: number): number {
  let h = (Math.imul(seed ^ 0x85ebca6b, 0xc2b2ae35) + Math.imul(index + 1, 0x27d4eb2f)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x45d9f3b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

function* randomChunks(type: GgmlTypeId, elements: number, next: () => number): Generator<Buffer> {
  for (let done = 0; done < elements; done += CHUNK_ELEMENTS) {
    const n = Math.min(CHUNK_ELEMENTS, elements - done);
    if (type === GgmlType.Q8_0) yield randomQ8_0(n, next);
    else if (type === GgmlType.F16) yield randomF16(n, next);
    else yield randomF32(n, next);
  }
}

// Uniform weights on 65536 evenly spaced levels, looked up per 16 random bits: two values per
// xorshift call and no per-value float conversion, which keeps multi-GB F16 models quick to write.
const UNIFORM_F32 = Float32Array.from({ length: 1 << 16 }, (_, i) => ((i + 0.5) / (1 << 16) - 0.5) * 2 * UNIFORM_HALF_WIDTH);
const UNIFORM_F16 = Uint16Array.from(UNIFORM_F32, f32ToF16);

function fillUniform<T extends Float32Array | Uint16Array>(out: T, levels: T, next: () => number): T {
  for (let i = 0; i < out.length; i += 2) {
    const bits = next();
    out[i] = levels[bits & 0xffff]!;
    if (i + 1 < out.length) out[i + 1] = levels[bits >>> 16]!;
  }
  return out;
}

function randomF32(n: number, next: () => number): Buffer {
  return Buffer.from(fillUniform(new Float32Array(n), UNIFORM_F32, next).buffer);
}

function randomF16(n: number, next: () => number): Buffer {
  return Buffer.from(fillUniform(new Uint16Array(n), UNIFORM_F16, next).buffer);
}

function randomQ8_0(n: number, next: () => number): Buffer {
  const blocks = n / Q8_0_BLOCK_SIZE;
  const quantWords = new Uint32Array(n / 4);
  for (let i = 0; i < quantWords.length; i++) quantWords[i] = next();
  const quants = new Int8Array(quantWords.buffer);
  const out = Buffer.allocUnsafe(blocks * Q8_0_BLOCK_BYTES);
  for (let b = 0; b < blocks; b++) writeQ8_0Block(out, b * Q8_0_BLOCK_BYTES, Q8_0_SCALE, quants, b * Q8_0_BLOCK_SIZE);
  return out;
}

export function tensorSource(plan: TensorPlan, seed: number): GgufTensorSource {
  const elements = elementCount(plan.dims);
  const data =
    plan.fill === "ones"
      ? () => Buffer.from(new Float32Array(elements).fill(1).buffer)
      : () => randomChunks(plan.type, elements, xorshift32(seed));
  return { name: plan.name, dims: plan.dims, type: plan.type, data };
}

function checkShape(shape: SyntheticShape): void {
  const counts = [shape.nEmbd, shape.nLayer, shape.nHead, shape.nHeadKv, shape.nFf, shape.contextLength];
  if (!counts.every((n) => Number.isSafeInteger(n) && n > 0)) {
    throw new BadRequestError("synthetic model shape: every size must be a positive integer");
  }
  if (shape.nEmbd % shape.nHead !== 0 || shape.nHead % shape.nHeadKv !== 0) {
    throw new BadRequestError(
      `synthetic model shape: embedding ${shape.nEmbd} must split into ${shape.nHead} heads, and heads into ${shape.nHeadKv} KV heads`,
    );
  }
  const local = [shape.slidingWindow, shape.swaPattern].filter((n) => n !== undefined);
  if (!local.every((n) => Number.isSafeInteger(n) && n! > 0)) {
    throw new BadRequestError("synthetic model shape: the sliding window and its layer pattern must be positive integers");
  }
  const deepstack = shape.deepstackLayers ?? 0;
  // llama.cpp adds a deepstack embedding to every token's row of its layer: the last layer has kept only the output rows.
  if (!Number.isSafeInteger(deepstack) || deepstack < 0 || deepstack >= shape.nLayer) {
    throw new BadRequestError(`synthetic model shape: deepstack layers ${deepstack} must be a whole number below the ${shape.nLayer} layers`);
  }
  const sections = shape.ropeSections;
  if (sections && (!sections.every((n) => Number.isSafeInteger(n) && n >= 0) || sections.reduce((a, b) => a + b, 0) !== shape.nEmbd / shape.nHead / 2)) {
    throw new BadRequestError(`synthetic model shape: rope sections ${sections.join(", ")} must sum to half the head width (${shape.nEmbd / shape.nHead / 2})`);
  }
}

function resolveShape(options: SyntheticModelOptions): { shape: SyntheticShape; name: string } {
  if (options.preset !== undefined && options.shape !== undefined) throw new BadRequestError("give a preset or a shape, not both");
  if (options.shape) return { shape: options.shape, name: options.name ?? `synthetic-${options.shape.arch}` };
  if (options.preset === undefined || !isSyntheticPreset(options.preset)) {
    throw new BadRequestError(
      `unknown synthetic preset ${JSON.stringify(options.preset)} (known: ${Object.keys(SYNTHETIC_PRESETS).join(", ")})`,
    );
  }
  return { shape: SYNTHETIC_PRESETS[options.preset], name: options.name ?? options.preset };
}

const CONTROL_TOKEN_TYPE = 3;

function withControlTokens(tokenizer: Array<[string, GgufValue]>, control: Record<number, string>): Array<[string, GgufValue]> {
  const ids = Object.keys(control).map(Number);
  if (ids.length === 0) return tokenizer;
  return tokenizer.map(([key, value]): [string, GgufValue] => {
    if (key === "tokenizer.ggml.tokens" && value.type === "array" && value.itemType === "string") {
      const texts = [...value.value];
      for (const id of ids) texts[id] = control[id]!;
      return [key, { ...value, value: texts }];
    }
    if (key === "tokenizer.ggml.token_type" && value.type === "array" && value.itemType === "int32") {
      const types = [...value.value];
      for (const id of ids) types[id] = CONTROL_TOKEN_TYPE;
      return [key, { ...value, value: types }];
    }
    return [key, value];
  });
}

/** Writes a random-weight GGUF that llama.cpp loads and runs like the real architecture. */
export async function writeSyntheticModel(options: SyntheticModelOptions): Promise<SyntheticModelSummary> {
  const { shape, name } = resolveShape(options);
  checkShape(shape);
  const weightType = WEIGHT_TYPES[options.type];
  if (!weightType) throw new BadRequestError(`unknown weight type ${JSON.stringify(options.type)} (known: f32, f16, q8_0)`);

  const tokenizer = withControlTokens(await tokenizerMetadata(shape.vocab), options.controlTokens ?? {});
  const tokens = tokenizer.find(([key]) => key === "tokenizer.ggml.tokens")?.[1];
  if (tokens?.type !== "array") throw new BadRequestError(`vocabulary ${shape.vocab} has no tokenizer.ggml.tokens`);
  const nVocab = tokens.value.length;

  const metadata = [...architectureMetadata(shape, name, weightType.fileType), ...tokenizer];
  if (options.chatTemplate !== undefined) {
    const template = options.chatTemplate === true ? DEFAULT_CHAT_TEMPLATES[shape.vocab] : options.chatTemplate;
    metadata.push(["tokenizer.chat_template", gguf.string(template)]);
  }

  const seed = options.seed ?? 0;
  const plans = tensorPlans(shape, nVocab, weightType.ggml);
  await writeGguf(options.out, {
    metadata,
    tensors: plans.map((plan, index) => tensorSource(plan, tensorSeed(seed, index))),
  });
  return {
    path: options.out,
    shape,
    nVocab,
    tensorCount: plans.length,
    parameterCount: plans.reduce((sum, plan) => sum + elementCount(plan.dims), 0),
  };
}
