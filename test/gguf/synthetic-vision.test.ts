// The vision fixtures of the GGUF writer: Qwen2-VL's shape (M-RoPE sections in the language
// model, the qwen2vl_merger projector's tensors), Qwen3-VL's (deepstack layers on both sides),
// Gemma 3's (a sliding window, a pooled SigLIP projector), and shapes it refuses.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { BadRequestError } from "../../src/api/errors.js";
import { readGgufHeader } from "../../src/gguf/reader.js";
import { writeSyntheticProjector, writeSyntheticVisionModel } from "../../src/gguf/synthetic-projector.js";
import { SYNTHETIC_PRESETS, writeSyntheticModel } from "../../src/gguf/synthetic.js";

const tmp = () => mkdtempSync(path.join(os.tmpdir(), "vllama-synthetic-vision-"));

describe("synthetic vision models", () => {
  test("tiny-vision-mrope: a qwen2vl language model with rope sections, a qwen2vl_merger projector with two patch convolutions", async () => {
    const dir = tmp();
    const { model, projector } = await writeSyntheticVisionModel({ preset: "tiny-vision-mrope", dir, type: "f32" });
    const lm = await readGgufHeader(model.path);
    assert.equal(lm.metadata.get("general.architecture")?.value, "qwen2vl");
    assert.deepEqual(lm.metadata.get("qwen2vl.rope.dimension_sections")?.value, [2, 3, 3, 0]);
    const mm = await readGgufHeader(projector.path);
    assert.equal(mm.metadata.get("clip.projector_type")?.value, "qwen2vl_merger");
    const names = mm.tensors.map((t) => t.name);
    for (const name of ["v.patch_embd.weight", "v.patch_embd.weight.1", "v.post_ln.weight", "mm.0.weight", "mm.2.weight"]) assert.ok(names.includes(name), name);
    assert.ok(!names.includes("v.class_embd") && !names.includes("v.position_embd.weight"), "rotary positions, no class token");
    assert.equal(projector.imageTokens, 4, "a 32 x 32 square in 8 x 8 patches merged 2 x 2");
  });

  test("tiny-vision-qwen3vl: a qwen3vl model with per-head norms and 2 deepstack layers, a qwen3vl_merger with a deepstack merger per ViT layer named", async () => {
    const { model, projector } = await writeSyntheticVisionModel({ preset: "tiny-vision-qwen3vl", dir: tmp(), type: "f32" });
    const lm = await readGgufHeader(model.path);
    assert.equal(lm.metadata.get("general.architecture")?.value, "qwen3vl");
    assert.equal(lm.metadata.get("qwen3vl.n_deepstack_layers")?.value, 2);
    const lmNames = lm.tensors.map((t) => t.name);
    assert.ok(lmNames.includes("blk.0.attn_q_norm.weight") && lmNames.includes("blk.0.attn_k_norm.weight"));
    assert.ok(!lmNames.includes("blk.0.attn_q.bias"), "Qwen3 has no QKV biases");
    const mm = await readGgufHeader(projector.path);
    assert.equal(mm.metadata.get("clip.projector_type")?.value, "qwen3vl_merger");
    assert.equal(mm.metadata.get("clip.use_gelu")?.value, true);
    const names = mm.tensors.map((t) => t.name);
    for (const name of ["v.patch_embd.bias", "v.position_embd.weight", "v.blk.0.attn_qkv.weight", "v.deepstack.0.fc2.weight", "v.deepstack.1.norm.weight"]) {
      assert.ok(names.includes(name), name);
    }
    assert.ok(!names.includes("v.deepstack.2.fc1.weight") && !names.includes("v.blk.0.attn_q.weight"));
  });

  test("tiny-vision-gemma3: a gemma3 model with a sliding window on every other layer and post-norms, a gemma3 projector into its width", async () => {
    const { model, projector } = await writeSyntheticVisionModel({ preset: "tiny-vision-gemma3", dir: tmp(), type: "f32" });
    const lm = await readGgufHeader(model.path);
    assert.equal(lm.metadata.get("general.architecture")?.value, "gemma3");
    assert.equal(lm.metadata.get("gemma3.attention.sliding_window")?.value, 16);
    assert.equal(lm.metadata.get("gemma3.attention.sliding_window_pattern")?.value, 2);
    const lmNames = lm.tensors.map((t) => t.name);
    for (const name of ["blk.1.post_attention_norm.weight", "blk.1.post_ffw_norm.weight", "blk.1.attn_q_norm.weight"]) assert.ok(lmNames.includes(name), name);
    const mm = await readGgufHeader(projector.path);
    assert.equal(mm.metadata.get("clip.projector_type")?.value, "gemma3");
    const proj = mm.tensors.find((t) => t.name === "mm.input_projection.weight");
    assert.deepEqual(proj?.dims, [64, 32], "from the ViT's 32 to the model's 64");
    assert.equal(projector.imageTokens, 16, "a 64 x 64 square in 4 x 4 patches, averaged 4 x 4");
    await assert.rejects(writeSyntheticProjector({
      shape: { type: "gemma3", imageSize: 24, patchSize: 4, nEmbd: 32, nHead: 4, nFf: 64, nLayer: 1, projectionDim: 64 }, out: path.join(tmp(), "p.gguf"),
    }), (e: Error) => e instanceof BadRequestError && /gemma3 averages 4 x 4 patches, which must tile the image/.test(e.message));
  });

  test("tiny-vision-tiles: an mlp projector with LLaVA-1.6's resolutions to tile to; pinpoints that are not whole tiles are refused", async () => {
    const { projector } = await writeSyntheticVisionModel({ preset: "tiny-vision-tiles", dir: tmp(), type: "f32" });
    const mm = await readGgufHeader(projector.path);
    assert.equal(mm.metadata.get("clip.projector_type")?.value, "mlp");
    assert.deepEqual(mm.metadata.get("clip.vision.image_grid_pinpoints")?.value, [32, 32, 64, 32, 32, 64, 64, 64]);
    const mlp = { type: "mlp" as const, imageSize: 32, patchSize: 8, nEmbd: 32, nHead: 4, nFf: 64, nLayer: 1, projectionDim: 64 };
    for (const shape of [{ ...mlp, pinpoints: [48, 32] }, { ...mlp, pinpoints: [64] }, { ...mlp, type: "gemma3" as const, imageSize: 64, patchSize: 4, pinpoints: [64, 64] }]) {
      await assert.rejects(writeSyntheticProjector({ shape, out: path.join(tmp(), "p.gguf") }), (e: Error) =>
        e instanceof BadRequestError && /pinpoints are mlp's, width and height pairs of whole tiles/.test(e.message));
    }
  });

  test("tiny-vision-idefics3: an idefics3 projector that tiles at its longest edge, its marker tokens written into the model's vocabulary as control tokens", async () => {
    const { model, projector } = await writeSyntheticVisionModel({ preset: "tiny-vision-idefics3", dir: tmp(), type: "f32" });
    const mm = await readGgufHeader(projector.path);
    assert.equal(mm.metadata.get("clip.projector_type")?.value, "idefics3");
    assert.equal(mm.metadata.get("clip.vision.preproc_image_size")?.value, 64);
    assert.equal(mm.metadata.get("clip.vision.projector.scale_factor")?.value, 2);
    assert.deepEqual(mm.tensors.find((t) => t.name === "mm.model.fc.weight")?.dims, [128, 64], "4 patches of 32 side by side, into the model's 64");
    const lm = await readGgufHeader(model.path);
    const tokens = lm.metadata.get("tokenizer.ggml.tokens")?.value as string[];
    const types = lm.metadata.get("tokenizer.ggml.token_type")?.value as number[];
    assert.deepEqual(tokens.slice(31997), ["<fake_token_around_image>", "<global-img>", "\n\n"]);
    assert.deepEqual(types.slice(31997), [3, 3, 3]);
  });

  test("deepstack layers a projector type lacks, repeats, or as many as the model's layers are refused", async () => {
    const merger = { imageSize: 32, patchSize: 8, nEmbd: 32, nHead: 4, nFf: 64, nLayer: 2, projectionDim: 64 };
    await assert.rejects(writeSyntheticProjector({ shape: { ...merger, type: "qwen2vl_merger", deepstackLayers: [0] }, out: path.join(tmp(), "p.gguf") }),
      (e: Error) => e instanceof BadRequestError && /only qwen3vl_merger has deepstack layers/.test(e.message));
    for (const deepstackLayers of [[0, 0], [2]]) {
      await assert.rejects(writeSyntheticProjector({ shape: { ...merger, type: "qwen3vl_merger", deepstackLayers }, out: path.join(tmp(), "p.gguf") }),
        (e: Error) => e instanceof BadRequestError && /deepstack layers must be distinct layers of the 2/.test(e.message));
    }
    // llama.cpp adds a deepstack embedding to all of a layer's rows, which its last layer no longer has.
    const shape = { ...SYNTHETIC_PRESETS["tiny-qwen3vl"], deepstackLayers: 3 };
    await assert.rejects(writeSyntheticModel({ shape, type: "f32", out: path.join(tmp(), "m.gguf") }), (e: Error) =>
      e instanceof BadRequestError && /deepstack layers 3 must be a whole number below the 3 layers/.test(e.message));
  });

  test("rope sections that do not sum to half the head width are refused", async () => {
    const shape = { ...SYNTHETIC_PRESETS["tiny-qwen2vl"], ropeSections: [2, 3, 4, 0] as [number, number, number, number] };
    await assert.rejects(writeSyntheticModel({ shape, type: "f32", out: path.join(tmp(), "m.gguf") }), (e: Error) =>
      e instanceof BadRequestError && /rope sections 2, 3, 4, 0 must sum to half the head width \(8\)/.test(e.message));
  });

  test("a qwen2vl_merger whose heads do not split in 4 rotary sections is refused", async () => {
    const shape = { type: "qwen2vl_merger" as const, imageSize: 32, patchSize: 8, nEmbd: 36, nHead: 6, nFf: 64, nLayer: 1, projectionDim: 64 };
    await assert.rejects(writeSyntheticProjector({ shape, out: path.join(tmp(), "p.gguf") }), (e: Error) =>
      e instanceof BadRequestError && /qwen2vl_merger needs a head width divisible by 4/.test(e.message));
  });
});
