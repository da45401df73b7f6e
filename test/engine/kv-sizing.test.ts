// Sizing the KV cache from memory: pure arithmetic over the model's shape and the free memory.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { kvBytesPerCell, sizeKvCache, type KvSizingInput } from "../../src/engine/kv-sizing.js";
import type { ModelInfo } from "../../src/native/index.js";

function info(metadata: Record<string, string>, shape: { layers: number; embd: number }): ModelInfo {
  return {
    architecture: "llama", description: "", parameterCount: 0, sizeBytes: 0, contextLengthTrained: 0,
    embeddingLength: shape.embd, layerCount: shape.layers, vocabSize: 0, hasEncoder: false, hasDecoder: true,
    bos: 1, eos: 2, eot: -1, addBos: true, addEos: false, chatTemplate: "", metadata,
    fim: { pre: -1, suf: -1, mid: -1, pad: -1, rep: -1, sep: -1 }, weightBuffersMiB: {},
  };
}

const GIB = 1024 ** 3;
const base: KvSizingInput = { bytesPerCell: 1024, memoryFree: 8 * GIB, memoryShare: 0.5, parallel: 8, contextTrained: 8192 };

describe("KV cache sizing", () => {
  test("bytes per cell follow layers, KV heads and head size (Llama-3.1-8B: 128 KiB in f16)", () => {
    const llama8b = info({ "llama.attention.head_count": "32", "llama.attention.head_count_kv": "8" }, { layers: 32, embd: 4096 });
    assert.equal(kvBytesPerCell(llama8b, "f16"), 32 * 8 * 256 * 2);
    assert.equal(kvBytesPerCell(llama8b, "q8_0"), Math.ceil(32 * 8 * 256 * (34 / 32)));
  });

  test("explicit key and value lengths and per-layer KV head arrays are read from the metadata", () => {
    const m = info({
      "llama.attention.head_count": "8", "llama.attention.head_count_kv": "[2, 4, 4]",
      "llama.attention.key_length": "192", "llama.attention.value_length": "128",
    }, { layers: 3, embd: 512 });
    assert.equal(kvBytesPerCell(m, "f16"), 3 * 4 * (192 + 128) * 2);
  });

  test("with memory to spare the cache holds every sequence at the trained context", () => {
    const s = sizeKvCache(base);
    assert.deepEqual([s.kvCells, s.contextLength, s.sizedBy], [8 * 8192, 8192, "parallel x context"]);
    assert.equal(s.bytes, 8 * 8192 * 1024);
  });

  test("short of memory the cache takes the memory share, and one sequence never outgrows it", () => {
    const s = sizeKvCache({ ...base, memoryFree: 40 * 1024 * 1024 }); // 20 MiB share = 20,480 cells
    assert.deepEqual([s.kvCells, s.contextLength, s.sizedBy], [20480, 8192, "memory"]);
    const tiny = sizeKvCache({ ...base, memoryFree: 6 * 1024 * 1024 }); // 3,072 cells
    assert.deepEqual([tiny.kvCells, tiny.contextLength], [3072, 3072]);
  });

  test("the operator's context length and cell count win", () => {
    assert.equal(sizeKvCache({ ...base, contextLength: 2048 }).kvCells, 8 * 2048);
    const s = sizeKvCache({ ...base, kvCells: 1000, contextLength: 4096 });
    assert.deepEqual([s.kvCells, s.contextLength, s.sizedBy], [1000, 1000, "kvCells"]);
  });

  test("a request's larger num_ctx sizes the cache for parallel x it where memory allows, else what memory holds; a smaller one changes nothing", () => {
    const s = sizeKvCache({ ...base, contextRequested: 16384 });
    assert.deepEqual([s.kvCells, s.contextLength, s.sizedBy], [8 * 16384, 16384, "parallel x context"]);
    const short = sizeKvCache({ ...base, memoryFree: 40 * 1024 * 1024, contextRequested: 16384 }); // 20,480 cells
    assert.deepEqual([short.kvCells, short.contextLength, short.sizedBy], [20480, 16384, "memory"]);
    const tiny = sizeKvCache({ ...base, memoryFree: 6 * 1024 * 1024, contextRequested: 16384 }); // 3,072 cells
    assert.deepEqual([tiny.kvCells, tiny.contextLength], [3072, 3072]);
    assert.deepEqual(sizeKvCache({ ...base, contextRequested: 1024 }), sizeKvCache(base));
    assert.equal(sizeKvCache({ ...base, contextLength: 2048, contextRequested: 4096 }).contextLength, 4096);
  });

  test("an unknown trained context falls back to 4,096 and cells round to llama.cpp's 256", () => {
    const s = sizeKvCache({ ...base, contextTrained: 0, parallel: 3, contextLength: 1000 });
    assert.equal(s.kvCells, 3072);
    assert.equal(sizeKvCache({ ...base, contextTrained: 0 }).contextLength, 4096);
    assert.equal(sizeKvCache({ ...base, memoryFree: 1 }).kvCells, 256);
  });
});
