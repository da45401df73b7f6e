import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, open, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { BadRequestError, NotFoundError } from "../../src/api/errors.js";
import { f16ToF32, f32ToF16, GgmlType, ggmlTensorBytes, Q8_0_BLOCK_BYTES, writeQ8_0Block } from "../../src/gguf/ggml-types.js";
import {
  formatParameterSize,
  ggufArchitecture,
  ggufParameterCount,
  ggufQuantizationLabel,
  readGgufHeader,
} from "../../src/gguf/reader.js";
import { Template } from "@huggingface/jinja";
import {
  CHATML_TEMPLATE,
  DEFAULT_CHAT_TEMPLATES,
  llamaCppSourceDir,
  SPM_CHAT_TEMPLATE,
  writeSyntheticModel,
} from "../../src/gguf/synthetic.js";
import { gguf, metadataNumber, metadataString, type GgufFile, type GgufValue } from "../../src/gguf/values.js";
import { writeGguf, type GgufTensorSource } from "../../src/gguf/writer.js";
import { repoRoot, storiesPath } from "../helpers/models.js";

const addonPath = path.join(repoRoot, "build", "Release", "vllama.node");

function hasLlamaCppSource(): boolean {
  try {
    llamaCppSourceDir();
    return true;
  } catch {
    return false;
  }
}
const noVocab = hasLlamaCppSource() ? false : "llama.cpp source tree missing (run npm run build:native)";

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "vllama-gguf-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readTensorBytes(file: GgufFile, name: string): Promise<Buffer> {
  const tensor = file.tensors.find((t) => t.name === name);
  assert.ok(tensor, `tensor ${name} present`);
  const handle = await open(file.path, "r");
  try {
    const { buffer } = await handle.read(Buffer.alloc(tensor.byteSize), 0, tensor.byteSize, file.dataOffset + tensor.offset);
    return buffer;
  } finally {
    await handle.close();
  }
}

/** A rejection with BadRequestError whose message names the file and contains `detail`. */
async function assertBadGguf(filePath: string, detail: RegExp): Promise<void> {
  await assert.rejects(readGgufHeader(filePath), (error: unknown) => {
    assert.ok(error instanceof BadRequestError, `BadRequestError, got ${String(error)}`);
    assert.ok(error.message.includes(filePath), `message names the file: ${error.message}`);
    assert.match(error.message, detail);
    return true;
  });
}

describe("reading stories260K.gguf", () => {
  test("architecture, context length, vocabulary, parameters", async () => {
    const file = await readGgufHeader(storiesPath);
    assert.equal(file.version, 3);
    assert.equal(ggufArchitecture(file), "llama");
    assert.deepEqual(file.metadata.get("llama.context_length"), { type: "uint32", value: 128 });
    const tokens = file.metadata.get("tokenizer.ggml.tokens");
    assert.ok(tokens?.type === "array" && tokens.itemType === "string");
    assert.equal(tokens.value.length, 512);
    assert.equal(file.metadata.get("tokenizer.ggml.scores")?.type, "array");
    assert.equal(metadataNumber(file, "llama.block_count"), 5);
    // 5 layers of 9 tensors, plus token_embd, output_norm and output.
    assert.equal(file.tensors.length, 48);
    const parameters = ggufParameterCount(file);
    assert.ok(parameters > 200_000 && parameters < 400_000, `about 260K parameters, got ${parameters}`);
    assert.equal(ggufQuantizationLabel(file), "F32");
    assert.equal(file.alignment, 32);
    assert.equal(file.dataOffset % 32, 0);
    const embd = file.tensors.find((t) => t.name === "token_embd.weight");
    assert.deepEqual(embd?.dims, [64, 512]);
    const last = file.tensors.reduce((a, b) => (a.offset > b.offset ? a : b));
    assert.equal(file.dataOffset + last.offset + last.byteSize, file.fileSize);
  });

  test("copying its metadata into a new file keeps every key's type", async () => {
    const source = await readGgufHeader(storiesPath);
    const out = path.join(dir, "copy.gguf");
    await writeGguf(out, { metadata: [...source.metadata], tensors: [] });
    const copy = await readGgufHeader(out);
    assert.deepEqual(copy.metadata, source.metadata);
  });
});

describe("write/read round trip", () => {
  const everyType: Array<[string, GgufValue]> = [
    ["t.uint8", gguf.uint8(255)],
    ["t.int8", gguf.int8(-128)],
    ["t.uint16", gguf.uint16(65535)],
    ["t.int16", gguf.int16(-32768)],
    ["t.uint32", gguf.uint32(4294967295)],
    ["t.int32", gguf.int32(-2147483648)],
    ["t.float32", gguf.float32(0.5)],
    ["t.float64", gguf.float64(Math.PI)],
    ["t.uint64", gguf.uint64(2n ** 64n - 1n)],
    ["t.int64", gguf.int64(-(2n ** 63n))],
    ["t.bool", gguf.bool(true)],
    ["t.string", gguf.string("héllo ✓ 世界")],
    ["t.empty_string", gguf.string("")],
    ["t.arr.uint8", gguf.array("uint8", [0, 1, 255])],
    ["t.arr.int8", gguf.array("int8", [-1, 127])],
    ["t.arr.uint16", gguf.array("uint16", [7])],
    ["t.arr.int16", gguf.array("int16", [-7])],
    ["t.arr.uint32", gguf.array("uint32", [1, 2, 3])],
    ["t.arr.int32", gguf.array("int32", [-1, 0, 1])],
    ["t.arr.float32", gguf.array("float32", [1.5, -0.25])],
    ["t.arr.float64", gguf.array("float64", [1e300])],
    ["t.arr.uint64", gguf.array("uint64", [0n, 2n ** 40n])],
    ["t.arr.int64", gguf.array("int64", [-(2n ** 40n)])],
    ["t.arr.bool", gguf.array("bool", [true, false])],
    ["t.arr.string", gguf.array("string", ["a", "", "ü"])],
    ["t.arr.empty", gguf.array("int32", [])],
    ["t.arr.nested", gguf.array("array", [gguf.array("string", ["x", "y"]), gguf.array("uint8", [9]), gguf.array("array", [])])],
  ];

  test("every metadata type, nested arrays, and tensor data", async () => {
    const out = path.join(dir, "every-type.gguf");
    const f32Values = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
    const q8Block = Buffer.alloc(Q8_0_BLOCK_BYTES);
    writeQ8_0Block(q8Block, 0, 0.25, Int8Array.from({ length: 32 }, (_, i) => i - 16));
    const tensors: GgufTensorSource[] = [
      { name: "a.f32", dims: [3, 2], type: GgmlType.F32, data: () => Buffer.from(f32Values.buffer) },
      // Two blocks from a generator of single-block chunks.
      { name: "b.q8_0", dims: [64], type: GgmlType.Q8_0, data: function* () { yield q8Block; yield q8Block; } },
    ];
    await writeGguf(out, { metadata: everyType, tensors });

    const file = await readGgufHeader(out);
    assert.deepEqual([...file.metadata], everyType);
    assert.deepEqual(
      file.tensors.map(({ name, dims, type, offset, byteSize }) => ({ name, dims, type, offset, byteSize })),
      [
        { name: "a.f32", dims: [3, 2], type: GgmlType.F32, offset: 0, byteSize: 24 },
        { name: "b.q8_0", dims: [64], type: GgmlType.Q8_0, offset: 32, byteSize: 68 },
      ],
    );
    assert.deepEqual(await readTensorBytes(file, "a.f32"), Buffer.from(f32Values.buffer));
    assert.deepEqual(await readTensorBytes(file, "b.q8_0"), Buffer.concat([q8Block, q8Block]));
    assert.equal(file.fileSize, file.dataOffset + 32 + 96);
    assert.deepEqual(await readdir(dir).then((names) => names.filter((n) => n.endsWith(".tmp"))), []);
  });

  test("general.alignment is honoured", async () => {
    const out = path.join(dir, "aligned.gguf");
    const tensor = (name: string): GgufTensorSource => ({ name, dims: [5], type: GgmlType.F32, data: () => Buffer.alloc(20) });
    await writeGguf(out, { metadata: [["general.alignment", gguf.uint32(256)]], tensors: [tensor("x"), tensor("y")] });
    const file = await readGgufHeader(out);
    assert.equal(file.alignment, 256);
    assert.equal(file.dataOffset % 256, 0);
    assert.deepEqual(file.tensors.map((t) => t.offset), [0, 256]);
  });

  test("parsing a vocabulary takes time linear in its size (25k and 200k strings)", async () => {
    // A ratio, not a time limit: the shared machine's load moves both sizes alike.
    const parseMs = async (count: number) => {
      const out = path.join(dir, `vocab-${count}.gguf`);
      const tokens = Array.from({ length: count }, (_, i) => `tok${i}▁`);
      const types = Array.from({ length: count }, (_, i) => i % 4);
      await writeGguf(out, {
        metadata: [["tokenizer.ggml.tokens", gguf.array("string", tokens)], ["tokenizer.ggml.token_type", gguf.array("int32", types)]],
        tensors: [],
      });
      let fastest = Infinity;
      for (let run = 0; run < 5; run++) {
        const started = performance.now();
        await readGgufHeader(out);
        fastest = Math.min(fastest, performance.now() - started);
      }
      const file = await readGgufHeader(out);
      assert.deepEqual(file.metadata.get("tokenizer.ggml.tokens"), gguf.array("string", tokens));
      return fastest;
    };
    const small = await parseMs(25_000);
    const large = await parseMs(200_000);
    // Linear is 8x; a quadratic parse (string concatenation, re-slicing) would be 64x. The wide gap
    // leaves room for a loaded machine: at load 10 (2026-12-02) 50k vs 200k measured 10x, not 4x.
    assert.ok(large < 24 * small, `25k strings ${small.toFixed(0)} ms, 200k ${large.toFixed(0)} ms`);
  });
});

describe("writer rejects bad input", () => {
  test("tensor data of the wrong size leaves no file behind", async () => {
    const out = path.join(dir, "short.gguf");
    const tensors = [{ name: "w", dims: [4], type: GgmlType.F32, data: () => Buffer.alloc(12) }];
    await assert.rejects(writeGguf(out, { metadata: [], tensors }), (e: unknown) => e instanceof BadRequestError && /w: data has 12 bytes, expected 16/.test(e.message));
    assert.equal(existsSync(out), false);
    assert.equal(existsSync(`${out}.tmp`), false);
  });

  test("values outside their type, bad dims, duplicate keys", async () => {
    const out = path.join(dir, "bad.gguf");
    const cases: Array<[Parameters<typeof writeGguf>[1], RegExp]> = [
      [{ metadata: [["k", gguf.uint32(-1)]], tensors: [] }, /k: -1 is not a valid uint32/],
      [{ metadata: [["k", gguf.int8(1.5)]], tensors: [] }, /not a valid int8/],
      [{ metadata: [["k", gguf.array("uint16", [70000])]], tensors: [] }, /not a valid uint16/],
      [{ metadata: [["k", gguf.uint64(-1n)]], tensors: [] }, /not a valid uint64/],
      [{ metadata: [["k", gguf.bool(true)], ["k", gguf.bool(false)]], tensors: [] }, /duplicate metadata key k/],
      [{ metadata: [], tensors: [{ name: "q", dims: [33], type: GgmlType.Q8_0, data: () => Buffer.alloc(0) }] }, /not a multiple of the Q8_0 block size/],
    ];
    for (const [spec, message] of cases) {
      await assert.rejects(writeGguf(out, spec), (e: unknown) => e instanceof BadRequestError && message.test(e.message));
    }
    assert.equal(existsSync(out), false);
  });
});

describe("reader rejects broken files with a typed error", () => {
  let valid: Buffer;
  before(async () => {
    const source = path.join(dir, "valid.gguf");
    await writeGguf(source, {
      metadata: [["general.architecture", gguf.string("llama")], ["tokenizer.ggml.tokens", gguf.array("string", ["a", "b", "c"])]],
      tensors: [{ name: "w", dims: [64], type: GgmlType.F32, data: () => Buffer.alloc(256, 1) }],
    });
    valid = await readFile(source);
  });

  async function broken(name: string, edit: (bytes: Buffer) => Buffer): Promise<string> {
    const filePath = path.join(dir, name);
    await writeFile(filePath, edit(Buffer.from(valid)));
    return filePath;
  }

  test("bad magic", async () => {
    await assertBadGguf(await broken("magic.gguf", (b) => (b.write("GGML", 0, "latin1"), b)), /not a GGUF file/);
    await assertBadGguf(await broken("empty.gguf", () => Buffer.alloc(0)), /truncated header/);
  });

  test("unsupported versions", async () => {
    await assertBadGguf(await broken("v1.gguf", (b) => (b.writeUInt32LE(1, 4), b)), /unsupported GGUF version 1/);
    await assertBadGguf(await broken("v99.gguf", (b) => (b.writeUInt32LE(99, 4), b)), /unsupported GGUF version 99/);
    await assertBadGguf(await broken("be.gguf", (b) => (b.writeUInt32BE(3, 4), b)), /big-endian/);
  });

  test("truncated header and truncated tensor data", async () => {
    await assertBadGguf(await broken("cut-header.gguf", (b) => b.subarray(0, 60)), /truncated header/);
    await assertBadGguf(await broken("cut-data.gguf", (b) => b.subarray(0, b.length - 10)), /tensor w data .* extends past the end of the file/);
  });

  test("absurd counts and lengths, unknown types", async () => {
    // Header layout: magic, version u32, tensor count u64 @8, metadata count u64 @16, first key length u64 @24.
    await assertBadGguf(await broken("count.gguf", (b) => (b.writeBigUInt64LE(2n ** 40n, 16), b)), /metadata count is 1099511627776/);
    await assertBadGguf(await broken("tensors.gguf", (b) => (b.writeBigUInt64LE(2n ** 63n, 8), b)), /tensor count is/);
    await assertBadGguf(await broken("keylen.gguf", (b) => (b.writeBigUInt64LE(2n ** 50n, 24), b)), /string length is/);
    const keyLength = "general.architecture".length;
    await assertBadGguf(await broken("vtype.gguf", (b) => (b.writeUInt32LE(77, 32 + keyLength), b)), /unknown value type 77/);
    const tokensArrayLength = valid.indexOf("tokenizer.ggml.tokens") + "tokenizer.ggml.tokens".length + 8;
    await assertBadGguf(await broken("arrlen.gguf", (b) => (b.writeBigUInt64LE(2n ** 59n, tokensArrayLength), b)), /length of array tokenizer.ggml.tokens/);
    const tensorType = valid.indexOf("w", tokensArrayLength + 20) + 1 + 4 + 8;
    await assertBadGguf(await broken("ggmltype.gguf", (b) => (b.writeUInt32LE(200, tensorType), b)), /tensor w has unknown ggml type 200/);
  });

  test("a missing file, a directory", async () => {
    await assert.rejects(readGgufHeader(path.join(dir, "nope.gguf")), (e: unknown) => e instanceof NotFoundError && /nope.gguf not found/.test(e.message));
    await assertBadGguf(dir, /cannot read GGUF file/);
  });
});

describe("ggml types and labels", () => {
  test("f16 conversion rounds to nearest even and handles specials", () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.1, 0x2e66], [65504, 0x7bff],
      [65520, 0x7c00], [Infinity, 0x7c00], [-Infinity, 0xfc00], [2 ** -24, 0x0001], [2 ** -26, 0x0000],
      [6.097555160522461e-5, 0x03ff], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
    ];
    for (const [value, half] of cases) assert.equal(f32ToF16(value), half, `f32ToF16(${value})`);
    assert.equal(f32ToF16(NaN) & 0x7c00, 0x7c00);
    assert.ok(Number.isNaN(f16ToF32(f32ToF16(NaN))));
    for (const value of [1, -2, 0.5, 65504, 2 ** -24, 0.0999755859375]) assert.equal(f16ToF32(f32ToF16(value)), value);
  });

  test("Q8_0 block layout: f16 scale then 32 int8", () => {
    const block = Buffer.alloc(Q8_0_BLOCK_BYTES);
    const quants = Int8Array.from({ length: 32 }, (_, i) => (i % 2 ? -i : i));
    assert.equal(writeQ8_0Block(block, 0, 1, quants), 34);
    assert.equal(block.readUInt16LE(0), 0x3c00);
    assert.deepEqual(new Int8Array(block.buffer, block.byteOffset + 2, 32), quants);
    assert.throws(() => writeQ8_0Block(block, 0, 1, new Int8Array(31)), RangeError);
  });

  test("tensor sizes by block geometry", () => {
    assert.equal(ggmlTensorBytes(GgmlType.F16, [10, 3]), 60);
    assert.equal(ggmlTensorBytes(GgmlType.Q8_0, [64, 2]), 4 * 34);
    assert.equal(ggmlTensorBytes(GgmlType.Q4_K, [256, 4]), 4 * 144);
    assert.equal(ggmlTensorBytes(GgmlType.Q6_K, [512]), 2 * 210);
    assert.equal(ggmlTensorBytes(GgmlType.IQ4_XS, [256]), 136);
    assert.match(String(ggmlTensorBytes(GgmlType.Q4_K, [128])), /not a multiple/);
  });

  test("parameter size labels as Ollama prints them", () => {
    assert.equal(formatParameterSize(7_615_616_512), "7.6B");
    assert.equal(formatParameterSize(8_030_261_248), "8.0B");
    assert.equal(formatParameterSize(494_032_768), "494.03M");
    assert.equal(formatParameterSize(110_000_000), "110M");
    assert.equal(formatParameterSize(260_000), "260K");
    assert.equal(formatParameterSize(292_800), "293K");
    assert.equal(formatParameterSize(999), "999");
  });

  test("quantization label from general.file_type, else the dominant tensor type", async () => {
    const withFileType = path.join(dir, "ftype.gguf");
    await writeGguf(withFileType, { metadata: [["general.file_type", gguf.uint32(15)]], tensors: [] });
    assert.equal(ggufQuantizationLabel(await readGgufHeader(withFileType)), "Q4_K_M");
    const mixed = path.join(dir, "mixed.gguf");
    await writeGguf(mixed, {
      metadata: [],
      tensors: [
        { name: "norm", dims: [32], type: GgmlType.F32, data: () => Buffer.alloc(128) },
        { name: "w", dims: [32, 4], type: GgmlType.Q8_0, data: () => Buffer.alloc(4 * 34) },
      ],
    });
    assert.equal(ggufQuantizationLabel(await readGgufHeader(mixed)), "Q8_0");
  });
});

test("default chat templates render the expected prompts", () => {
  const render = (template: string) =>
    new Template(template).render({
      messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Yo" }, { role: "user", content: "Bye" }],
      add_generation_prompt: true,
      bos_token: "<s>",
      eos_token: "</s>",
    });
  assert.equal(render(DEFAULT_CHAT_TEMPLATES["llama-spm"]), "<s><|user|>\nHi</s>\n<|assistant|>\nYo</s>\n<|user|>\nBye</s>\n<|assistant|>\n");
  assert.equal(
    render(DEFAULT_CHAT_TEMPLATES["llama-bpe"]),
    "<s><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|>" +
      "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
  );
  assert.equal(
    render(DEFAULT_CHAT_TEMPLATES.qwen2),
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n" +
      "<|im_start|>assistant\nYo<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
  );
});

describe("synthetic models", { skip: noVocab }, () => {
  let tinyLlama: string;
  let tinyQwen: string;
  before(async () => {
    tinyLlama = path.join(dir, "tiny-llama.gguf");
    tinyQwen = path.join(dir, "tiny-qwen2.gguf");
    await writeSyntheticModel({ preset: "tiny-llama", type: "q8_0", out: tinyLlama, chatTemplate: true, seed: 7 });
    await writeSyntheticModel({ preset: "tiny-qwen2", type: "f16", out: tinyQwen, seed: 7 });
  });

  function tensorMap(file: GgufFile): Map<string, { dims: number[]; type: number }> {
    return new Map(file.tensors.map((t) => [t.name, { dims: t.dims, type: t.type }]));
  }

  test("tiny-llama: llama keys, the spm tokenizer with its types, llama.cpp's tensor names and dims", async () => {
    const file = await readGgufHeader(tinyLlama);
    const vocab = await readGgufHeader(path.join(llamaCppSourceDir(), "models", "ggml-vocab-llama-spm.gguf"));
    assert.equal(ggufArchitecture(file), "llama");
    assert.equal(ggufQuantizationLabel(file), "Q8_0");
    for (const [key, n] of Object.entries({ embedding_length: 64, block_count: 2, "attention.head_count": 4, "attention.head_count_kv": 2, feed_forward_length: 128, "rope.dimension_count": 16 })) {
      assert.deepEqual(file.metadata.get(`llama.${key}`), gguf.uint32(n), key);
    }
    assert.equal(file.metadata.get("llama.attention.layer_norm_rms_epsilon")?.type, "float32");
    for (const [key, value] of vocab.metadata) {
      if (key.startsWith("tokenizer.")) assert.deepEqual(file.metadata.get(key), value, key);
    }
    assert.equal(metadataString(file, "tokenizer.chat_template"), SPM_CHAT_TEMPLATE);

    const tensors = tensorMap(file);
    assert.equal(tensors.size, 2 * 9 + 3);
    assert.deepEqual(tensors.get("token_embd.weight"), { dims: [64, 32000], type: GgmlType.Q8_0 });
    assert.deepEqual(tensors.get("output.weight"), { dims: [64, 32000], type: GgmlType.Q8_0 });
    assert.deepEqual(tensors.get("output_norm.weight"), { dims: [64], type: GgmlType.F32 });
    assert.deepEqual(tensors.get("blk.1.attn_norm.weight"), { dims: [64], type: GgmlType.F32 });
    assert.deepEqual(tensors.get("blk.1.attn_q.weight"), { dims: [64, 64], type: GgmlType.Q8_0 });
    assert.deepEqual(tensors.get("blk.1.attn_k.weight"), { dims: [64, 32], type: GgmlType.Q8_0 });
    assert.deepEqual(tensors.get("blk.1.attn_v.weight"), { dims: [64, 32], type: GgmlType.Q8_0 });
    assert.deepEqual(tensors.get("blk.1.attn_output.weight"), { dims: [64, 64], type: GgmlType.Q8_0 });
    assert.deepEqual(tensors.get("blk.1.ffn_gate.weight"), { dims: [64, 128], type: GgmlType.Q8_0 });
    assert.deepEqual(tensors.get("blk.1.ffn_up.weight"), { dims: [64, 128], type: GgmlType.Q8_0 });
    assert.deepEqual(tensors.get("blk.1.ffn_down.weight"), { dims: [128, 64], type: GgmlType.Q8_0 });

    const norm = new Float32Array((await readTensorBytes(file, "blk.0.ffn_norm.weight")).buffer.slice(0));
    assert.ok(norm.every((v) => v === 1));
    const q = await readTensorBytes(file, "blk.0.attn_q.weight");
    const scale = f16ToF32(q.readUInt16LE(0));
    assert.ok(scale > 0 && scale < 0.001, `small Q8_0 scale ${scale}`);
  });

  test("tiny-qwen2: tied output, q/k/v biases, qwen2 vocabulary", async () => {
    const file = await readGgufHeader(tinyQwen);
    assert.equal(ggufArchitecture(file), "qwen2");
    assert.equal(ggufQuantizationLabel(file), "F16");
    assert.equal(file.metadata.get("tokenizer.chat_template"), undefined);
    assert.equal(metadataString(file, "tokenizer.ggml.model"), "gpt2");
    assert.deepEqual(file.metadata.get("tokenizer.ggml.eos_token_id"), gguf.uint32(151643));
    const tensors = tensorMap(file);
    assert.equal(tensors.has("output.weight"), false);
    assert.deepEqual(tensors.get("token_embd.weight"), { dims: [64, 151936], type: GgmlType.F16 });
    assert.deepEqual(tensors.get("blk.0.attn_q.bias"), { dims: [64], type: GgmlType.F32 });
    assert.deepEqual(tensors.get("blk.0.attn_k.bias"), { dims: [32], type: GgmlType.F32 });
    assert.deepEqual(tensors.get("blk.0.attn_v.bias"), { dims: [32], type: GgmlType.F32 });
    assert.equal(tensors.size, 2 * 12 + 2);
    const weights = new Uint16Array((await readTensorBytes(file, "blk.0.ffn_up.weight")).buffer.slice(0));
    const values = Array.from(weights, f16ToF32);
    const std = Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);
    assert.ok(std > 0.015 && std < 0.025, `weights have std ~0.02, got ${std}`);
  });

  test("the same seed writes the same file, another seed different weights", async () => {
    const digest = async (p: string) => createHash("sha256").update(await readFile(p)).digest("hex");
    const again = path.join(dir, "tiny-llama-again.gguf");
    const reseeded = path.join(dir, "tiny-llama-seed8.gguf");
    await writeSyntheticModel({ preset: "tiny-llama", type: "q8_0", out: again, chatTemplate: true, seed: 7 });
    await writeSyntheticModel({ preset: "tiny-llama", type: "q8_0", out: reseeded, chatTemplate: true, seed: 8 });
    assert.equal(await digest(again), await digest(tinyLlama));
    assert.notEqual(await digest(reseeded), await digest(tinyLlama));
  });

  test("custom shapes are checked, chat templates can be given", async () => {
    const out = path.join(dir, "custom.gguf");
    const shape = { arch: "qwen2", vocab: "qwen2", nEmbd: 64, nLayer: 1, nHead: 3, nHeadKv: 1, nFf: 64, contextLength: 256, ropeFreqBase: 1e6, rmsNormEps: 1e-6, tiedOutput: true } as const;
    await assert.rejects(writeSyntheticModel({ shape, type: "f32", out }), BadRequestError);
    await assert.rejects(writeSyntheticModel({ preset: "nope" as "tiny-llama", type: "f32", out }), /unknown synthetic preset/);
    const summary = await writeSyntheticModel({ shape: { ...shape, nHead: 4 }, type: "f32", out, chatTemplate: CHATML_TEMPLATE, name: "custom" });
    assert.equal(summary.tensorCount, 12 + 2);
    const file = await readGgufHeader(out);
    assert.equal(metadataString(file, "general.name"), "custom");
    assert.equal(metadataString(file, "tokenizer.chat_template"), CHATML_TEMPLATE);
    assert.equal(ggufParameterCount(file), summary.parameterCount);
  });

  test("llama.cpp loads and decodes them through the native addon", { skip: !existsSync(addonPath) && "native addon not built" }, async () => {
    const { createContext, loadModel } = await import("../../src/native/index.js");
    const expected = [
      { file: tinyLlama, architecture: "llama", vocabSize: 32000 },
      { file: tinyQwen, architecture: "qwen2", vocabSize: 151936 },
    ];
    for (const { file, architecture, vocabSize } of expected) {
      const model = await loadModel(file, { gpu: "cpu" });
      try {
        assert.equal(model.info.architecture, architecture);
        assert.equal(model.info.vocabSize, vocabSize);
        assert.equal(model.info.layerCount, 2);
        assert.equal(model.info.embeddingLength, 64);
        const tokens = model.tokenize("Once upon a time", true, false);
        assert.ok(tokens.length >= 4);
        const context = await createContext(model, { kvCells: 64, nSeqMax: 1, batchCapacity: 32, nUbatch: 32, threads: 1 });
        try {
          context.setSampler(0, {
            temperature: 0, topK: 40, topP: 1, minP: 0, typicalP: 1, seed: 1,
            repeatLastN: 0, repeatPenalty: 1, presencePenalty: 0, frequencyPenalty: 0,
          });
          const n = tokens.length;
          const result = await context.step({
            tokens,
            positions: Int32Array.from({ length: n }, (_, i) => i),
            seqIds: new Int32Array(n),
            sample: Uint8Array.from({ length: n }, (_, i) => (i === n - 1 ? 1 : 0)),
          });
          assert.equal(result.status, "ok");
          assert.equal(result.sampledTokens.length, 1);
          assert.ok(result.sampledTokens[0]! >= 0 && result.sampledTokens[0]! < vocabSize);
        } finally {
          await context.dispose();
        }
      } finally {
        await model.dispose();
      }
    }
  });
});
