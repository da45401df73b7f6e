// Random-weight multimodal projectors ("mmproj" GGUFs, general.architecture "clip") of a real
// shape, for a synthetic language model: the vision half of a vision model, loaded by llama.cpp's
// multimodal library (tools/mtmd) as a real one is.
//
// Two shapes. LLaVA-1.5's (projector type "mlp"): a CLIP ViT (class token, learned positions,
// pre-norm, LayerNorm blocks with biases, quick-GELU) and a two-layer GELU MLP into the language
// model's embedding width. Of the projector types clip.cpp loads it needs the fewest tensors and
// no special tokens in the vocabulary (SmolVLM's idefics3 looks its markers up in the vocabulary,
// Gemma 3's needs Gemma 3's language model), so it pairs with the synthetic llama models.
// Qwen2-VL's ("qwen2vl_merger"): a ViT with 2-D rotary positions instead of learned ones, its
// patch embedding as two convolutions (v.patch_embd.weight and .weight.1, for two video frames),
// no class token, a final norm, and an MLP merging each 2 x 2 patches into one row; its images keep
// their aspect (rows = a grid of nx x ny), and its language model (qwen2vl) takes M-RoPE positions.
// Qwen3-VL's ("qwen3vl_merger"): Qwen2-VL's, plus a patch bias, learned positions resized to the
// image's grid, one fused QKV matrix, GELU, and deepstack: some ViT layers' outputs go through their
// own merger MLP and ride beside the main embedding in each row, which the language model (qwen3vl)
// adds to its first layers' outputs.
// Gemma 3's ("gemma3"): a SigLIP ViT (learned positions, no class token, a patch bias, GELU, a
// final norm), its patches averaged 4 x 4, an RMS norm and one projection into the model; its
// image rows attend to each other both ways (mtmd_decode_use_non_causal).
// Idefics3's (SmolVLM's, "idefics3"): a SigLIP ViT whose patches are shuffled 2 x 2 into one
// row and projected, and an image cut into imageSize tiles after an overview, each tile's chunk
// after marker text (its row and column) that mtmd reads from the vocabulary.
// Tensor names and hparam keys are clip.cpp's (tools/mtmd/clip-impl.h, load_hparams/load_tensors,
// models/qwen2vl.cpp, models/qwen3vl.cpp, models/siglip.cpp).

import { BadRequestError } from "../api/errors.js";
import { elementCount, GgmlType } from "./ggml-types.js";
import { LLAMA_FILE_TYPE } from "./reader.js";
import path from "node:path";
import { mkdir } from "node:fs/promises";
import {
  SYNTHETIC_PRESETS, tensorSeed, tensorSource, writeSyntheticModel,
  type SyntheticModelSummary, type SyntheticPreset, type SyntheticShape, type SyntheticWeightType, type TensorPlan,
} from "./synthetic.js";
import { gguf, type GgufValue } from "./values.js";
import { writeGguf } from "./writer.js";

export type SyntheticProjectorType = "mlp" | "qwen2vl_merger" | "qwen3vl_merger" | "gemma3" | "idefics3";

export interface SyntheticProjectorShape {
  type: SyntheticProjectorType;
  /**
   * mlp, gemma3: the square input side in pixels, images resized to it; idefics3: a tile's side;
   * the mergers: images keep their own size (qwen3vl_merger: its learned positions are this side's
   * grid, resized to the image's).
   */
  imageSize: number;
  patchSize: number;
  nEmbd: number;
  nHead: number;
  nFf: number;
  nLayer: number;
  /** The language model's embedding width, which the projector's rows have. */
  projectionDim: number;
  /** qwen3vl_merger: the ViT layers whose outputs also become a row's deepstack embeddings. */
  deepstackLayers?: number[];
  /**
   * mlp: LLaVA-1.6's tiling, as width, height pairs of the resolutions an image may be resized to:
   * an image becomes an overview and a grid of imageSize tiles, each its own chunk of rows.
   */
  pinpoints?: number[];
  /** idefics3: the side an image's longer side is resized to before it is cut into tiles. */
  longestEdge?: number;
}

export interface SyntheticProjectorOptions {
  shape: SyntheticProjectorShape;
  out: string;
  seed?: number;
  name?: string;
}

export interface SyntheticProjectorSummary {
  path: string;
  /** Embedding rows an imageSize square becomes (one per PATCHES_PER_ROW patches); images of another size, or tiled, become others. */
  imageTokens: number;
  tensorCount: number;
  parameterCount: number;
}

// CLIP's (OpenAI) pixel normalization, as LLaVA-1.5's and Qwen2-VL's mmproj files carry it; SigLIP's
// and Qwen3-VL's map [0, 1] to [-1, 1].
const CLIP_IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_IMAGE_STD = [0.26862954, 0.26130258, 0.27577711];
const HALF = [0.5, 0.5, 0.5];
/** Projector types whose ViT uses GELU (tanh) and maps pixels from [0, 1] to [-1, 1]; the others: quick-GELU and CLIP's normalization. */
const GELU_HALF_NORMALIZED: ReadonlySet<SyntheticProjectorType> = new Set(["qwen3vl_merger", "gemma3", "idefics3"]);
/** gemma3: patches averaged per side (clip.cpp's default for every Gemma 3). */
const GEMMA3_POOL = 4;
/** idefics3: patches shuffled into one row per side (SmolVLM-256M: 4). */
const IDEFICS3_SHUFFLE = 2;
/** Patches that make one embedding row. */
const PATCHES_PER_ROW: Record<SyntheticProjectorType, number> = {
  mlp: 1, gemma3: GEMMA3_POOL ** 2, idefics3: IDEFICS3_SHUFFLE ** 2, qwen2vl_merger: 4, qwen3vl_merger: 4,
};

function projectorMetadata(s: SyntheticProjectorShape, name: string): Array<[string, GgufValue]> {
  return [
    ["general.architecture", gguf.string("clip")],
    ["general.name", gguf.string(name)],
    ["general.file_type", gguf.uint32(LLAMA_FILE_TYPE.F32)],
    ["clip.has_vision_encoder", gguf.bool(true)],
    ["clip.projector_type", gguf.string(s.type)],
    ["clip.vision.image_size", gguf.uint32(s.imageSize)],
    ["clip.vision.patch_size", gguf.uint32(s.patchSize)],
    ["clip.vision.embedding_length", gguf.uint32(s.nEmbd)],
    ["clip.vision.feed_forward_length", gguf.uint32(s.nFf)],
    ["clip.vision.block_count", gguf.uint32(s.nLayer)],
    ["clip.vision.projection_dim", gguf.uint32(s.projectionDim)],
    ["clip.vision.attention.head_count", gguf.uint32(s.nHead)],
    ["clip.vision.attention.layer_norm_epsilon", gguf.float32(1e-5)],
    ["clip.vision.image_mean", gguf.array("float32", GELU_HALF_NORMALIZED.has(s.type) ? HALF : CLIP_IMAGE_MEAN)],
    ["clip.vision.image_std", gguf.array("float32", GELU_HALF_NORMALIZED.has(s.type) ? HALF : CLIP_IMAGE_STD)],
    ...(GELU_HALF_NORMALIZED.has(s.type) ? [["clip.use_gelu", gguf.bool(true)] as [string, GgufValue]] : []),
    ...(s.pinpoints ? [["clip.vision.image_grid_pinpoints", gguf.array("int32", s.pinpoints)] as [string, GgufValue]] : []),
    ...(s.type === "idefics3"
      ? [["clip.vision.projector.scale_factor", gguf.uint32(IDEFICS3_SHUFFLE)], ["clip.vision.preproc_image_size", gguf.uint32(s.longestEdge ?? s.imageSize)]] as Array<[string, GgufValue]>
      : []),
  ];
}

/** Tensor names and ggml dims (ne0 first) as clip.cpp loads them for the shape's projector type. */
function projectorTensors(s: SyntheticProjectorShape): TensorPlan[] {
  const nPatches = (s.imageSize / s.patchSize) ** 2;
  // Every tensor F32: a few thousand parameters, and clip.cpp reads some of them only as F32.
  const random = (name: string, ...dims: number[]): TensorPlan => ({ name, dims, type: GgmlType.F32, fill: "random" });
  const norm = (prefix: string, n = s.nEmbd): TensorPlan[] => [
    { name: `${prefix}.weight`, dims: [n], type: GgmlType.F32, fill: "ones" },
    random(`${prefix}.bias`, n),
  ];
  const linear = (prefix: string, nIn: number, nOut: number) => [random(`${prefix}.weight`, nIn, nOut), random(`${prefix}.bias`, nOut)];
  const patches = random("v.patch_embd.weight", s.patchSize, s.patchSize, 3, s.nEmbd);
  // Two patch convolutions, one per video frame; a still image goes through both.
  const framePatches = [patches, { ...patches, name: "v.patch_embd.weight.1" }];
  // SigLIP's (and Qwen3-VL's): a bias on the patches, a learned position each, no class token.
  const biasAndPositions = [random("v.patch_embd.bias", s.nEmbd), random("v.position_embd.weight", s.nEmbd, nPatches)];
  const tensors = {
    mlp: [patches, random("v.class_embd", s.nEmbd), random("v.position_embd.weight", s.nEmbd, nPatches + 1), ...norm("v.pre_ln")],
    qwen2vl_merger: framePatches,
    qwen3vl_merger: [...framePatches, ...biasAndPositions],
    gemma3: [patches, ...biasAndPositions],
    idefics3: [patches, ...biasAndPositions],
  }[s.type];
  const attention = (blk: string) => s.type === "qwen3vl_merger"
    ? linear(`${blk}.attn_qkv`, s.nEmbd, 3 * s.nEmbd)
    : ["q", "k", "v"].flatMap((m) => linear(`${blk}.attn_${m}`, s.nEmbd, s.nEmbd));
  for (let i = 0; i < s.nLayer; i++) {
    const blk = `v.blk.${i}`;
    tensors.push(
      ...norm(`${blk}.ln1`),
      ...attention(blk),
      ...linear(`${blk}.attn_out`, s.nEmbd, s.nEmbd),
      ...norm(`${blk}.ln2`),
      ...linear(`${blk}.ffn_up`, s.nEmbd, s.nFf),
      ...linear(`${blk}.ffn_down`, s.nFf, s.nEmbd),
    );
  }
  if (s.type === "mlp") {
    tensors.push(...linear("mm.0", s.nEmbd, s.projectionDim), ...linear("mm.2", s.projectionDim, s.projectionDim));
  } else if (s.type === "idefics3") {
    tensors.push(...norm("v.post_ln"), random("mm.model.fc.weight", PATCHES_PER_ROW.idefics3 * s.nEmbd, s.projectionDim));
  } else if (s.type === "gemma3") {
    tensors.push(
      ...norm("v.post_ln"),
      { name: "mm.soft_emb_norm.weight", dims: [s.nEmbd], type: GgmlType.F32, fill: "ones" },
      // clip.cpp multiplies by its transpose: ne0 is the model's width.
      random("mm.input_projection.weight", s.projectionDim, s.nEmbd),
    );
  } else {
    // Each row merges 2 x 2 patches: the MLP reads their 4 embeddings side by side.
    const merged = PATCHES_PER_ROW[s.type] * s.nEmbd;
    tensors.push(...norm("v.post_ln"), ...linear("mm.0", merged, merged), ...linear("mm.2", merged, s.projectionDim));
    for (const il of s.deepstackLayers ?? []) {
      const ds = `v.deepstack.${il}`;
      tensors.push(...norm(`${ds}.norm`, merged), ...linear(`${ds}.fc1`, merged, merged), ...linear(`${ds}.fc2`, merged, s.projectionDim));
    }
  }
  return tensors;
}

function checkShape(s: SyntheticProjectorShape): void {
  const sizes = [s.imageSize, s.patchSize, s.nEmbd, s.nHead, s.nFf, s.nLayer, s.projectionDim];
  if (!sizes.every((n) => Number.isSafeInteger(n) && n > 0)) {
    throw new BadRequestError("synthetic projector shape: every size must be a positive integer");
  }
  if (s.imageSize % s.patchSize !== 0 || s.nEmbd % s.nHead !== 0) {
    throw new BadRequestError("synthetic projector shape: patches must tile the image and heads split the embedding");
  }
  if (s.type === "idefics3" && ((s.imageSize / s.patchSize) % IDEFICS3_SHUFFLE !== 0 || (s.longestEdge ?? s.imageSize) < s.imageSize)) {
    throw new BadRequestError("synthetic projector shape: idefics3 shuffles 2 x 2 patches, which must tile a tile, and its longest edge is at least a tile");
  }
  if (s.type === "gemma3" && (s.imageSize / s.patchSize) % GEMMA3_POOL !== 0) {
    throw new BadRequestError(`synthetic projector shape: gemma3 averages ${GEMMA3_POOL} x ${GEMMA3_POOL} patches, which must tile the image`);
  }
  // The mergers' vision rotary splits each head in 4 sections; rows merge 2 x 2 patches.
  if ((s.type === "qwen2vl_merger" || s.type === "qwen3vl_merger") && ((s.nEmbd / s.nHead) % 4 !== 0 || s.imageSize % (2 * s.patchSize) !== 0)) {
    throw new BadRequestError(`synthetic projector shape: ${s.type} needs a head width divisible by 4 and the image side by 2 patches`);
  }
  const pinpoints = s.pinpoints ?? [];
  if (pinpoints.length > 0 && (s.type !== "mlp" || pinpoints.length % 2 !== 0 || !pinpoints.every((n) => Number.isSafeInteger(n) && n > 0 && n % s.imageSize === 0))) {
    throw new BadRequestError("synthetic projector shape: pinpoints are mlp's, width and height pairs of whole tiles");
  }
  const deepstack = s.deepstackLayers ?? [];
  if (deepstack.length > 0 && s.type !== "qwen3vl_merger") {
    throw new BadRequestError("synthetic projector shape: only qwen3vl_merger has deepstack layers");
  }
  if (!deepstack.every((il, i) => Number.isSafeInteger(il) && il >= 0 && il < s.nLayer && deepstack.indexOf(il) === i)) {
    throw new BadRequestError(`synthetic projector shape: deepstack layers must be distinct layers of the ${s.nLayer}`);
  }
}

/** Writes a random-weight projector GGUF of one of the shapes above that llama.cpp's mtmd loads and runs. */
export async function writeSyntheticProjector(options: SyntheticProjectorOptions): Promise<SyntheticProjectorSummary> {
  const { shape } = options;
  checkShape(shape);
  const seed = options.seed ?? 0;
  const tensors = projectorTensors(shape);
  await writeGguf(options.out, {
    metadata: projectorMetadata(shape, options.name ?? `synthetic-${shape.type}-projector`),
    tensors: tensors.map((plan, index) => tensorSource(plan, tensorSeed(seed, index))),
  });
  return {
    path: options.out,
    imageTokens: (shape.imageSize / shape.patchSize) ** 2 / PATCHES_PER_ROW[shape.type],
    tensorCount: tensors.length,
    parameterCount: tensors.reduce((sum, t) => sum + elementCount(t.dims), 0),
  };
}

interface VisionPresetShape {
  model: SyntheticPreset;
  /** Control tokens written over the model's vocabulary (SyntheticModelOptions.controlTokens). */
  modelControlTokens?: Record<number, string>;
  projector: Omit<SyntheticProjectorShape, "projectionDim">;
}

/** Vision models: a synthetic language model and a projector into its embedding width. */
export const SYNTHETIC_VISION_PRESETS = {
  /** tiny-llama seeing 32 x 32 images in 8 x 8 patches: 16 rows per image. */
  "tiny-vision": {
    model: "tiny-llama",
    projector: { type: "mlp", imageSize: 32, patchSize: 8, nEmbd: 32, nHead: 4, nFf: 64, nLayer: 2 },
  },
  /**
   * LLaVA-1.6's tiling over tiny-vision: an image is resized to 32 x 32, 64 x 32, 32 x 64 or 64 x 64
   * pixels and cut into 32 x 32 tiles, each 16 rows after a 16-row overview: a 48 x 40 image is 5
   * chunks of one image, 80 rows (LLaVA-1.6: 576 rows an overview or tile, up to 4 tiles).
   */
  "tiny-vision-tiles": {
    model: "tiny-llama",
    projector: { type: "mlp", imageSize: 32, patchSize: 8, nEmbd: 32, nHead: 4, nFf: 64, nLayer: 2, pinpoints: [32, 32, 64, 32, 32, 64, 64, 64] },
  },
  /**
   * The images benchmark's pair: llama110m seeing 224 x 224 images in 14 x 14 patches, 256 rows per
   * image (Gemma 3's count; LLaVA-1.5 has 576), so a request's image outweighs its question as in real
   * use, which tiny-vision's 16 rows do not.
   */
  "llama110m-vision": {
    model: "llama110m",
    projector: { type: "mlp", imageSize: 224, patchSize: 14, nEmbd: 256, nHead: 4, nFf: 1024, nLayer: 4 },
  },
  /**
   * Qwen2-VL's shape over tiny-qwen2vl (M-RoPE): 8 x 8 patches merged 2 x 2, an image of w x h
   * pixels resized to multiples of 16 (at least 8 rows): a 48 x 48 image is 9 rows in a 3 x 3 grid.
   */
  "tiny-vision-mrope": {
    model: "tiny-qwen2vl",
    projector: { type: "qwen2vl_merger", imageSize: 32, patchSize: 8, nEmbd: 32, nHead: 4, nFf: 64, nLayer: 2 },
  },
  /**
   * Qwen3-VL's shape over tiny-qwen3vl: tiny-vision-mrope's grid, with the outputs of ViT layers 0
   * and 1 as deepstack embeddings (Qwen3-VL-2B: layers 5, 11 and 17 of 24), so a row is 3 x 64 wide.
   */
  /**
   * Gemma 3's shape over tiny-gemma3: 64 x 64 images in 4 x 4 patches averaged 4 x 4, 16 rows an
   * image (Gemma 3: 896 pixels, 14-pixel patches, 256 rows), attending to each other both ways.
   */
  "tiny-vision-gemma3": {
    model: "tiny-gemma3",
    projector: { type: "gemma3", imageSize: 64, patchSize: 4, nEmbd: 32, nHead: 4, nFf: 64, nLayer: 2 },
  },
  /**
   * Idefics3's (SmolVLM's) tiling over tiny-llama: an image's longer side resized to 64 pixels, cut
   * into 32 x 32 tiles of 16 rows after a 32 x 32 overview, each tile's chunk after its marker text
   * (`<fake_token_around_image><row_1_col_2>`): a 48 x 40 image is 5 chunks with text between.
   * mtmd looks `<fake_token_around_image>`, `<global-img>` and "\n\n" up in the vocabulary: they
   * take the last three of its tokens' places as control tokens (SmolVLM's vocabulary has them).
   */
  "tiny-vision-idefics3": {
    model: "tiny-llama",
    modelControlTokens: { 31997: "<fake_token_around_image>", 31998: "<global-img>", 31999: "\n\n" },
    projector: { type: "idefics3", imageSize: 32, patchSize: 4, nEmbd: 32, nHead: 4, nFf: 64, nLayer: 2, longestEdge: 64 },
  },
  "tiny-vision-qwen3vl": {
    model: "tiny-qwen3vl",
    projector: { type: "qwen3vl_merger", imageSize: 32, patchSize: 8, nEmbd: 32, nHead: 4, nFf: 64, nLayer: 3, deepstackLayers: [0, 1] },
  },
} satisfies Record<string, VisionPresetShape>;

export type SyntheticVisionPreset = keyof typeof SYNTHETIC_VISION_PRESETS;

export function isSyntheticVisionPreset(name: string): name is SyntheticVisionPreset {
  return Object.hasOwn(SYNTHETIC_VISION_PRESETS, name);
}

export interface SyntheticVisionOptions {
  preset: SyntheticVisionPreset;
  /** Folder that gets model.gguf and mmproj.gguf (created when missing). */
  dir: string;
  type: SyntheticWeightType;
  seed?: number;
}

/** Writes DIR/model.gguf (with its vocabulary's chat template) and DIR/mmproj.gguf. */
export async function writeSyntheticVisionModel(
  options: SyntheticVisionOptions,
): Promise<{ model: SyntheticModelSummary; projector: SyntheticProjectorSummary }> {
  const preset: VisionPresetShape | undefined = SYNTHETIC_VISION_PRESETS[options.preset];
  if (!preset) throw new BadRequestError(`unknown vision preset ${JSON.stringify(options.preset)}`);
  const lm: SyntheticShape = SYNTHETIC_PRESETS[preset.model];
  // mtmd refuses a pair whose row width (the projection and its deepstack embeddings) is not the model's input width.
  if ((preset.projector.deepstackLayers?.length ?? 0) !== (lm.deepstackLayers ?? 0)) {
    throw new BadRequestError(`vision preset ${options.preset}: the projector's deepstack layers and the model's differ in number`);
  }
  await mkdir(options.dir, { recursive: true });
  const seed = options.seed ?? 0;
  const model = await writeSyntheticModel({
    preset: preset.model, type: options.type, out: path.join(options.dir, "model.gguf"), chatTemplate: true, seed, name: options.preset,
    controlTokens: preset.modelControlTokens,
  });
  const projector = await writeSyntheticProjector({
    shape: { ...preset.projector, projectionDim: lm.nEmbd },
    out: path.join(options.dir, "mmproj.gguf"),
    seed,
    name: `${options.preset}-mmproj`,
  });
  return { model, projector };
}
