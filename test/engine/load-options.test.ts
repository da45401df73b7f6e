// Load-time options (num_batch, num_thread, num_gpu, main_gpu, use_mmap, and num_ctx upwards) on
// the real stories260K: a model loaded with other settings is another entry of the pool; bad
// values are a 400 naming the option; and the KV cache sized from memory at default settings.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { BadRequestError } from "../../src/api/errors.js";
import { Engine } from "../../src/engine/engine.js";
import { writeSyntheticModel } from "../../src/gguf/synthetic.js";
import { storiesPath } from "../helpers/models.js";

const engines: Engine[] = [];
function newEngine(options: ConstructorParameters<typeof Engine>[0] = {}, hooks: ConstructorParameters<typeof Engine>[1] = {}): Engine {
  const e = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-load-options-")), ...options }, hooks);
  engines.push(e);
  return e;
}
after(async () => {
  for (const e of engines) await e.close();
});

const greedy = { temperature: 0, num_predict: 16 };

async function answer(engine: Engine, options: Record<string, unknown>, model = storiesPath): Promise<string> {
  return (await engine.generate({ model, prompt: "Once upon a time", stream: false, options: { ...greedy, ...options } })).response;
}

describe("load-time options", () => {
  test("num_thread 1 then the default: two pool entries, the same answer", async () => {
    const engine = newEngine();
    const one = await answer(engine, { num_thread: 1 });
    const dflt = await answer(engine, {});
    assert.equal(one, dflt);
    assert.equal((await engine.ps()).models.length, 2);
    // The same settings again reuse the entry; concurrent requests load once.
    await Promise.all([answer(engine, { num_thread: 1 }), answer(engine, { num_thread: 1 })]);
    assert.equal((await engine.ps()).models.length, 2);
  });

  test("num_batch 16 runs with 16 prompt tokens per step; num_gpu 0 and use_mmap false load", async () => {
    const engine = newEngine();
    const reference = await answer(engine, {});
    assert.equal(await answer(engine, { num_batch: 16 }), reference);
    assert.ok(engine.stats().some((s) => s.batchSize === 16));
    assert.equal(await answer(engine, { num_gpu: 0 }), reference);
    assert.equal(await answer(engine, { use_mmap: false }), reference);
  });

  test("a Modelfile PARAMETER num_batch applies, and the request's option wins over it", async () => {
    const engine = newEngine();
    for await (const _ of engine.create({ model: "batched", from: storiesPath, parameters: { num_batch: 32 } })) void _;
    await answer(engine, {}, "batched");
    assert.deepEqual(engine.stats().map((s) => s.batchSize), [32]);
    await answer(engine, { num_batch: 64 }, "batched");
    assert.deepEqual(engine.stats().map((s) => s.batchSize).sort((a, b) => a - b), [32, 64]);
  });

  test("values the engine cannot load with are a 400 naming the option", async () => {
    const engine = newEngine();
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ num_batch: 8 }, /num_batch/],
      [{ num_batch: 100000 }, /num_batch/],
      [{ main_gpu: 7 }, /main_gpu/],
      [{ num_thread: -1 }, /num_thread/],
      [{ num_gpu: -2 }, /num_gpu/],
      [{ use_mmap: "no" }, /use_mmap/],
      [{ num_ctx: 0 }, /num_ctx/],
      [{ num_ctx: "4096" }, /num_ctx/],
    ];
    for (const [options, message] of cases) {
      await assert.rejects(answer(engine, options), (e: unknown) => e instanceof BadRequestError && message.test(e.message), JSON.stringify(options));
    }
    assert.equal((await engine.ps()).models.length, 0);
  });
});

describe("KV cache sized from memory", () => {
  test("at default settings the cache holds parallel x the trained context; /api/ps and the load log say so", async () => {
    const lines: string[] = [];
    const engine = newEngine({ parallel: 8 }, { log: (line) => lines.push(line) });
    await answer(engine, {});
    const [ps] = (await engine.ps()).models;
    // stories260K was trained on 128 tokens; 8 x 128 cells is a few hundred KiB.
    assert.deepEqual([ps.context_length, ps.kv_cells, ps.parallel], [128, 1024, 8]);
    assert.ok(ps.kv_bytes! > 0 && ps.kv_bytes! < 16 * 1024 * 1024, `${ps.kv_bytes} bytes`);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /KV cache 1024 cells \(0\.\d\d GiB, sized by parallel x context\) = 8 sequences x 128 tokens/);
  });

  test("kvCells and contextLength still override", async () => {
    const engine = newEngine({ parallel: 4, kvCells: 2048, contextLength: 64 });
    await answer(engine, {});
    const [ps] = (await engine.ps()).models;
    assert.deepEqual([ps.context_length, ps.kv_cells], [64, 2048]);
  });

  test("a burst of long prompts that the sized cache holds is never preempted", async () => {
    const engine = newEngine({ parallel: 16 });
    const long = Array.from({ length: 16 }, (_, i) => `Once upon a time, in a small town ${i}, there was a girl named Lily. She liked to play with her ball in the park every day`);
    const responses = await Promise.all(long.map((prompt) =>
      engine.generate({ model: storiesPath, prompt, stream: false, options: { temperature: 0, num_predict: 48 } })));
    for (const r of responses) assert.ok(r.prompt_eval_count! > 20 && r.eval_count! > 0);
    const [stats] = engine.stats();
    assert.equal(stats.preemptions, 0);
  });

  test("8 prompts of 1,500 tokens at default settings all fit at once: never preempted", async () => {
    // tiny-llama was trained on 2,048 tokens: the sized cache holds 8 x 2,048 cells. The cache of
    // before 2026-12-01 (context x ceil(parallel / 4) = 4,096 cells) held fewer than 3 of these.
    const model = path.join(mkdtempSync(path.join(os.tmpdir(), "vllama-long-prompts-")), "tiny-llama.gguf");
    await writeSyntheticModel({ preset: "tiny-llama", type: "q8_0", out: model, seed: 3 });
    const engine = newEngine({ parallel: 8 });
    const words = ["river", "stone", "lantern", "meadow", "copper", "whisper", "harbor", "thistle"];
    const prompts = words.map((first, i) => Array.from({ length: 1500 }, (_, j) => words[(i + j * 3) % words.length] + (j % 7 === 0 ? "." : "")).join(" ").replace(/^\w+/, first));
    const responses = await Promise.all(prompts.map((prompt) =>
      engine.generate({ model, prompt, raw: true, stream: false, options: { temperature: 0, num_predict: 8, ignore_eos: true } })));
    for (const r of responses) assert.ok(r.prompt_eval_count! >= 1400 && r.eval_count === 8, `${r.prompt_eval_count} prompt, ${r.eval_count} generated`);
    const [ps] = (await engine.ps()).models;
    assert.deepEqual([ps.context_length, ps.kv_cells], [2048, 16384]);
    const [stats] = engine.stats();
    assert.equal(stats.preemptions, 0);
  });
});

// One compute thread: on a loaded 2-core machine two threads' spinning barriers made 200 tokens
// take 23 s instead of 0.2 s (2026-12-02, load 8).
describe("num_ctx larger than the loaded model's context", () => {
  test("loads the model again with a cache sized for it; a smaller num_ctx and the default use it as loaded", async () => {
    const lines: string[] = [];
    const engine = newEngine({ parallel: 8, threads: 1 }, { log: (line) => lines.push(line) });
    const reference = await answer(engine, {});
    const psOf = async () => (await engine.ps()).models.map((m) => [m.context_length, m.kv_cells]);
    assert.deepEqual(await psOf(), [[128, 1024]]);
    assert.equal(await answer(engine, { num_ctx: 4096 }), reference);
    // The first load was idle: it went as soon as the larger one was in.
    assert.deepEqual(await psOf(), [[4096, 8 * 4096]]);
    assert.match(lines[1], /KV cache 32768 cells .* = 8 sequences x 4096 tokens/);
    for (const options of [{ num_ctx: 512 }, {}, { num_ctx: 4096 }]) assert.equal(await answer(engine, options), reference);
    assert.deepEqual(await psOf(), [[4096, 8 * 4096]]);
    assert.equal(lines.length, 2, "no reload for a num_ctx the loaded context holds");
    // Without num_ctx a request gets the loaded model's context: a prompt of 3,000 tokens fits.
    const r = await engine.generate({ model: storiesPath, context: Array(3000).fill(300), prompt: "Once", truncate: false, stream: false, options: { num_predict: 1 } });
    assert.ok(r.prompt_eval_count! > 3000 && r.eval_count === 1);
  });

  test("a num_ctx below the trained context loads the default context, which a later default request uses", async () => {
    const engine = newEngine({ parallel: 4, threads: 1 });
    await answer(engine, { num_ctx: 64 });
    await answer(engine, {});
    assert.deepEqual((await engine.ps()).models.map((m) => [m.context_length, m.kv_cells]), [[128, 512]]);
  });

  test("a request in flight on the old load finishes there; the old load goes once it is done", async () => {
    const engine = newEngine({ parallel: 8, threads: 1 });
    const long = { temperature: 0, num_predict: -1, ignore_eos: true, num_ctx: 1024 };
    const alone = (await engine.generate({ model: storiesPath, prompt: "Once upon a time", stream: false, options: long })).response;
    const stream = await engine.generate({ model: storiesPath, prompt: "Once upon a time", stream: true, options: long });
    const pieces = stream[Symbol.asyncIterator]();
    let text = (await pieces.next()).value!.response;
    // 1,019 tokens take seconds here; the larger load and its 16 tokens take a fraction of that.
    assert.equal(await answer(engine, { num_ctx: 4096 }), await answer(newEngine({ threads: 1 }), {}));
    assert.deepEqual((await engine.ps()).models.map((m) => m.context_length), [1024, 4096]);
    assert.deepEqual(engine.stats().map((s) => s.running), [1, 0]);
    for (let piece = await pieces.next(); !piece.done; piece = await pieces.next()) text += piece.value.response;
    assert.equal(text, alone);
    assert.deepEqual((await engine.ps()).models.map((m) => m.context_length), [4096]);
  });

  test("concurrent requests with a larger num_ctx load the model once", async () => {
    const lines: string[] = [];
    const engine = newEngine({ parallel: 8, threads: 1 }, { log: (line) => lines.push(line) });
    await answer(engine, {});
    await Promise.all(Array.from({ length: 6 }, () => answer(engine, { num_ctx: 1024 })));
    assert.equal(lines.length, 2);
    assert.deepEqual((await engine.ps()).models.map((m) => m.context_length), [1024]);
  });

  test("with kvCells set by the operator num_ctx never reloads: it is clamped to the whole cache", async () => {
    const engine = newEngine({ parallel: 4, kvCells: 1024, threads: 1 });
    await answer(engine, {});
    await answer(engine, { num_ctx: 4096 });
    assert.deepEqual((await engine.ps()).models.map((m) => [m.context_length, m.kv_cells]), [[128, 1024]]);
    await assert.rejects(
      engine.generate({ model: storiesPath, context: Array(2000).fill(300), prompt: "Once", truncate: false, stream: false, options: { num_ctx: 4096 } }),
      (e: unknown) => e instanceof BadRequestError && /input length \(2\d\d\d tokens\) exceeds the context length \(num_ctx 1024, all the KV cache holds\)/.test(e.message),
    );
  });

  test("where memory already cut the cache, a larger num_ctx does not load the model again", async () => {
    const lines: string[] = [];
    const engine = newEngine({ parallel: 2, memoryShare: 1e-9, threads: 1 }, { log: (line) => lines.push(line) });
    await answer(engine, {});
    await answer(engine, { num_ctx: 4096 });
    await answer(engine, { num_ctx: 1_000_000 });
    assert.equal(lines.length, 1, lines.join("\n"));
    assert.deepEqual((await engine.ps()).models.map((m) => m.kv_cells), [256]);
  });

  test("a prompt larger than all the cache memory allows is refused at once; a request beside it is served", async () => {
    // A share of memory too small for any context: the cache gets llama.cpp's smallest, 256 cells.
    const engine = newEngine({ parallel: 2, memoryShare: 1e-9, threads: 1 });
    const tooLong = engine.generate({ model: storiesPath, context: Array(1000).fill(300), prompt: "Once", truncate: false, stream: false, options: { num_ctx: 4096 } });
    const beside = answer(engine, {});
    await assert.rejects(tooLong, (e: unknown) => e instanceof BadRequestError && /exceeds the context length \(num_ctx 256, all the KV cache holds\)/.test(e.message));
    assert.ok((await beside).length > 0);
    assert.deepEqual(engine.stats().map((s) => [s.running, s.waiting]), [[0, 0]]);
    // With truncation (the default) the same prompt is cut to fit, as Ollama cuts one longer than num_ctx.
    const cut = await engine.generate({ model: storiesPath, context: Array(1000).fill(300), prompt: "Once", stream: false, options: { num_ctx: 4096, num_predict: 4 } });
    assert.ok(cut.prompt_eval_count! < 256 && cut.eval_count === 4, `${cut.prompt_eval_count} prompt tokens`);
  });
});
