// The vision fixtures of the GGUF writer: Qwen2-VL's shape (M-RoPE sections in the language
// model, the qwen2vl_merger projector's tensors), and shapes it refuses.
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
