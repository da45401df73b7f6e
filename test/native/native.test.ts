// The native core on CPU with a real model: exact greedy output, batching, tokenizer, KV ops,
// errors, teardown and leaks.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { BadRequestError, NotFoundError } from "../../src/api/errors.js";
import { createContext, initBackend, jsonSchemaToGrammar, liveNativeObjects, loadModel } from "../../src/native/index.js";
import type { NativeContext, NativeModel, SamplerParams } from "../../src/native/index.js";
import { OTHER_PROMPTS, REFERENCE_PROMPT, REFERENCE_TEXT, storiesPath } from "../helpers/models.js";

const greedy: SamplerParams = {
  temperature: 0, topK: 40, topP: 1, minP: 0, typicalP: 1, seed: 1, repeatLastN: 64, repeatPenalty: 1, presencePenalty: 0, frequencyPenalty: 0,
};

interface Stream {
  seqId: number;
  pending: number[];
  pos: number;
  bytes: number[];
  generated: number[];
}

/** Greedy-decodes several sequences, every step one batch mixing all of them. */
async function decodeTogether(model: NativeModel, ctx: NativeContext, prompts: string[], steps: number, firstSeqId = 0): Promise<Stream[]> {
  const streams: Stream[] = prompts.map((p, i) => {
    ctx.setSampler(firstSeqId + i, greedy);
    return { seqId: firstSeqId + i, pending: [...model.tokenize(p, true, false)], pos: 0, bytes: [], generated: [] };
  });
  for (let s = 0; s < steps; s++) {
    const tokens: number[] = [], positions: number[] = [], seqIds: number[] = [], sample: number[] = [];
    for (const st of streams) {
      st.pending.forEach((t, k) => {
        tokens.push(t);
        positions.push(st.pos + k);
        seqIds.push(st.seqId);
        sample.push(k === st.pending.length - 1 ? 1 : 0);
      });
    }
    const r = await ctx.step({ tokens: Int32Array.from(tokens), positions: Int32Array.from(positions), seqIds: Int32Array.from(seqIds), sample: Uint8Array.from(sample) });
    assert.equal(r.status, "ok");
    streams.forEach((st, i) => {
      assert.equal(r.sampledSeqIds[i], st.seqId);
      st.pos += st.pending.length;
      const t = r.sampledTokens[i];
      st.generated.push(t);
      st.bytes.push(...model.tokenBytes(t, false));
      st.pending = [t];
    });
  }
  return streams;
}

const text = (s: Stream) => Buffer.from(s.bytes).toString("utf8");

/** Sequence 0's text after the reference prompt with `params`, up to `steps` tokens or the end of
 * generation; a pick the step deferred (its grammar refused the sampler's choice) is made off the step. */
async function sampleText(model: NativeModel, ctx: NativeContext, params: SamplerParams, steps: number): Promise<string> {
  ctx.seqRemove(0, -1, -1);
  ctx.setSampler(0, params);
  let pending = [...model.tokenize(REFERENCE_PROMPT, true, false)], pos = 0;
  const bytes: number[] = [];
  for (let i = 0; i < steps; i++) {
    const n = pending.length;
    const r = await ctx.step({ tokens: Int32Array.from(pending), positions: Int32Array.from({ length: n }, (_, k) => pos + k), seqIds: new Int32Array(n), sample: Uint8Array.from({ length: n }, (_, k) => +(k === n - 1)) });
    pos += n;
    const t = r.sampledTokens[0] >= 0 ? r.sampledTokens[0] : (await ctx.pickDeferred(Int32Array.of(0))).sampledTokens[0];
    if (model.isEog(t)) break;
    bytes.push(...model.tokenBytes(t, false));
    pending = [t];
  }
  return Buffer.from(bytes).toString("utf8");
}

describe("native core", () => {
  let model: NativeModel;
  let tmp: string;

  before(async () => {
    initBackend("cpu");
    model = await loadModel(storiesPath);
    tmp = mkdtempSync(path.join(os.tmpdir(), "vllama-native-"));
  });
  after(async () => {
    await model.dispose();
  });

  test("backend reports the CPU device", () => {
    const info = initBackend("cpu");
    assert.equal(info.backend, "cpu");
    assert.ok(info.devices.some((d) => d.type === "cpu"));
  });

  test("model facts come from the GGUF", () => {
    const i = model.info;
    assert.equal(i.architecture, "llama");
    assert.equal(i.vocabSize, 512);
    assert.equal(i.contextLengthTrained, 128);
    assert.equal(i.embeddingLength, 64);
    assert.equal(i.layerCount, 5);
    assert.ok(i.parameterCount > 200_000 && i.parameterCount < 400_000);
    assert.equal(i.bos, 1);
    assert.equal(i.eos, 2);
    assert.equal(i.addBos, true);
    assert.equal(i.chatTemplate, "");
    assert.equal(i.metadata["general.architecture"], "llama");
    assert.equal(i.metadata["llama.context_length"], "128");
  });

  test("greedy output is llama.cpp's reference text, alone", async () => {
    const ctx = await createContext(model, { kvCells: 256, nSeqMax: 1, batchCapacity: 64, nUbatch: 64 });
    const [s] = await decodeTogether(model, ctx, [REFERENCE_PROMPT], 48);
    assert.equal(text(s), REFERENCE_TEXT);
    await ctx.dispose();
  });

  test("greedy output is the same while 15 other sequences share every batch", async () => {
    const ctx = await createContext(model, { kvCells: 16 * 64, nSeqMax: 16, batchCapacity: 256, nUbatch: 256 });
    const streams = await decodeTogether(model, ctx, [REFERENCE_PROMPT, ...OTHER_PROMPTS], 48);
    assert.equal(text(streams[0]), REFERENCE_TEXT);
    // Each other sequence also matches its own solo run.
    const solo = await createContext(model, { kvCells: 256, nSeqMax: 1, batchCapacity: 64, nUbatch: 64 });
    for (const i of [3, 9, 15]) {
      solo.clear();
      const [alone] = await decodeTogether(model, solo, [OTHER_PROMPTS[i - 1]], 48);
      assert.equal(text(streams[i]), text(alone), `sequence ${i}`);
    }
    await solo.dispose();
    await ctx.dispose();
  });

  test("tokenize matches llama.cpp and round-trips, multi-byte text included", () => {
    assert.deepEqual([...model.tokenize("Once upon a time, Lily", false, false)], [403, 407, 261, 378, 432, 317]);
    assert.equal(model.tokenize(REFERENCE_PROMPT, true, false).length, 5);
    for (const s of ["Once upon a time, Lily", "héllo wörld", "日本語のテキスト ✓ 🙂", "tabs\tand\nnewlines"]) {
      const tokens = model.tokenize(s, false, false);
      assert.equal(model.detokenize(tokens, false, false).trimStart(), s);
    }
  });

  test("tokenizing many special tokens takes linear time and gives llama.cpp's tokens", async () => {
    // llama.cpp alone walked a list from its head at every special token: 32,000 of them took 7.6 s.
    const unit = "<s>Once upon a time</s>\n";
    const one = [...model.tokenize(unit, false, true)];
    assert.ok(one.includes(1) && one.includes(2), "the unit's <s> and </s> are special tokens");
    const text = unit.repeat(16_000);
    const started = performance.now();
    const whole = model.tokenize(text, true, true);
    assert.ok(performance.now() - started < 3_000, `took ${performance.now() - started} ms`);
    assert.deepEqual([...whole], [1, ...Array.from({ length: 16_000 }, () => one).flat()]);
    assert.deepEqual(await model.tokenizeAsync(text, true, true), whole);
    // Without parse_special the markers are text, with its own tokens.
    assert.ok(!model.tokenize(unit.repeat(100), false, false).includes(2));
  });

  test("a model being tokenized off the JS thread cannot be disposed until that settles", async () => {
    const other = await loadModel(storiesPath, {});
    const tokens = other.tokenizeAsync("Once upon a time ".repeat(200_000), false, false);
    assert.throws(() => other.dispose(), /still tokenizing/);
    assert.ok((await tokens).length > 100_000);
    await other.dispose();
  });

  test("token bytes never split a multi-byte character in the decoded stream", () => {
    const s = "日本語 🙂 ü";
    const tokens = model.tokenize(s, false, false);
    const pieces = [...tokens].map((t) => model.tokenBytes(t, false));
    // The vocabulary has byte-fallback tokens: some pieces are parts of one character.
    assert.ok(pieces.some((p) => { try { new TextDecoder("utf-8", { fatal: true }).decode(p); return false; } catch { return true; } }));
    const decoder = new TextDecoder();
    const out = pieces.map((p) => decoder.decode(p, { stream: true })).join("") + decoder.decode();
    assert.equal(out.trimStart(), s);
    assert.ok(!out.includes("\uFFFD"));
  });

  test("prefix sharing gives the same continuation as recomputing", async () => {
    const ctx = await createContext(model, { kvCells: 512, nSeqMax: 4, batchCapacity: 128, nUbatch: 128 });
    const [recomputed] = await decodeTogether(model, ctx, [REFERENCE_PROMPT], 20, 0);
    // Sequence 1 gets the prompt's first 4 cells from sequence 0 by copy, and only evaluates the last token.
    const prompt = [...model.tokenize(REFERENCE_PROMPT, true, false)];
    ctx.seqCopy(0, 1, 0, prompt.length - 1);
    assert.equal(ctx.seqPosMax(1), prompt.length - 2);
    ctx.setSampler(1, greedy);
    const out: number[] = [];
    let pending = [prompt[prompt.length - 1]], pos = prompt.length - 1;
    for (let i = 0; i < 20; i++) {
      const r = await ctx.step({ tokens: Int32Array.from(pending), positions: Int32Array.of(pos), seqIds: Int32Array.of(1), sample: Uint8Array.of(1) });
      out.push(r.sampledTokens[0]);
      pending = [r.sampledTokens[0]];
      pos++;
    }
    assert.deepEqual(out, recomputed.generated);
    await ctx.dispose();
  });

  test("removing a sequence frees its cells; a full cache is a typed no_room result", async () => {
    const ctx = await createContext(model, { kvCells: 256, nSeqMax: 8, batchCapacity: 64, nUbatch: 64 });
    // Sequences of 128 tokens each (positions stay below kvCells) until the cache has no room.
    const fill = async (firstSeqId: number) => {
      for (let cells = 0, seqId = firstSeqId; ; seqId++) {
        for (let pos = 0; pos < 128; pos += 64) {
          const r = await ctx.step({
            tokens: new Int32Array(64).fill(100), positions: Int32Array.from({ length: 64 }, (_, k) => pos + k),
            seqIds: new Int32Array(64).fill(seqId), sample: new Uint8Array(64),
          });
          if (r.status === "no_room") return cells;
          cells += 64;
        }
        if (seqId > firstSeqId + 6) throw new Error("cache never filled");
      }
    };
    const filled = await fill(0);
    assert.equal(filled, ctx.kvCells);
    assert.equal(ctx.seqPosMax(0), 127);
    assert.equal(ctx.seqPosMax(1), 127);
    // The failed step left nothing behind; removing the sequences frees their cells.
    assert.equal(ctx.seqPosMax(2), -1);
    assert.equal(ctx.seqRemove(0, -1, -1), true);
    assert.equal(ctx.seqRemove(1, -1, -1), true);
    assert.equal(ctx.seqPosMax(0), -1);
    assert.equal(await fill(4), filled);
    await ctx.dispose();
  });

  test("grammar from a JSON schema constrains sampling", async () => {
    const grammar = await jsonSchemaToGrammar({
      type: "object", properties: { mood: { enum: ["happy", "sad"] }, age: { type: "integer", minimum: 1, maximum: 99 } },
      required: ["mood", "age"], additionalProperties: false,
    });
    assert.match(grammar, /root ::=/);
    const ctx = await createContext(model, { kvCells: 256, nSeqMax: 1, batchCapacity: 64, nUbatch: 64 });
    const value = JSON.parse(await sampleText(model, ctx, { ...greedy, temperature: 0.9, seed: 7, grammar }, 60));
    assert.ok(["happy", "sad"].includes(value.mood));
    assert.ok(Number.isInteger(value.age) && value.age >= 1 && value.age <= 99);
    await ctx.dispose();
  });

  test("a lazy grammar leaves decoding free until its trigger, then forces its syntax; a refused trigger frees decoding", async () => {
    const ctx = await createContext(model, { kvCells: 256, nSeqMax: 1, batchCapacity: 64, nUbatch: 64 });
    const generate = (params: SamplerParams, steps = 24) => sampleText(model, ctx, params, steps);
    // The greedy reference: ", there was a little girl named Lily. ..."
    const lazy = (grammar: string, patterns: string[]): SamplerParams => ({ ...greedy, grammar, grammarTriggers: { patterns, tokens: [] } });
    assert.equal(await generate(lazy('root ::= "girl called Tom."', ["girl"])), ", there was a little girl called Tom.");
    assert.equal(await generate(lazy('root ::= "girl called Tom."', ["dragon"]), 30), REFERENCE_TEXT.slice(0, (await generate(greedy, 30)).length));
    // " was" completes the trigger "there w" with text the grammar refuses: the grammar goes, the text stays the model's own.
    assert.equal(await generate(lazy('root ::= "there is"', ["there w"]), 12), await generate(greedy, 12));
    // A non-lazy grammar reads its prefix first (as the tokenizer writes it: SentencePiece's
    // leading space included): here the whole root but for the end.
    assert.equal(await generate({ ...greedy, grammar: 'root ::= " Once upon a time, a cat."', grammarPrefix: "Once upon a time" }), ", a cat.");
    assert.throws(() => ctx.setSampler(0, { ...greedy, grammar: 'root ::= "abc"', grammarPrefix: "xyz" }), /the grammar refuses its prefix/);
    assert.throws(() => ctx.setSampler(0, lazy('root ::= "a"', ["("])), /invalid grammar trigger pattern/);
    assert.throws(() => ctx.setSampler(0, lazy('root ::= "a"', [])), /a lazy grammar needs a trigger/);
    assert.throws(() => ctx.setSampler(0, { ...greedy, grammar: 'root ::= "a"', grammarTriggers: { patterns: [], tokens: [100_000] } }), /out of range|invalid token/);
    await ctx.dispose();
  });

  test("a token the grammar refuses is picked off the step: the step samples the other rows, pickDeferred the refused one, with the text a pick in the step gave", async () => {
    const ctx = await createContext(model, { kvCells: 256, nSeqMax: 2, batchCapacity: 64, nUbatch: 64 });
    const prompt = model.tokenize(REFERENCE_PROMPT, true, false);
    const n = prompt.length;
    // The greedy reference goes on ", there was": the grammar refuses that first choice.
    ctx.setSampler(0, { ...greedy, grammar: 'root ::= " girl called Tom."' });
    ctx.setSampler(1, greedy);
    const rows = (seq: number, tokens: ArrayLike<number>, pos: number) => ({
      tokens: Int32Array.from(tokens), positions: Int32Array.from(tokens, (_, k) => pos + k),
      seqIds: new Int32Array(tokens.length).fill(seq), sample: Uint8Array.from(tokens, (_, k) => +(k === tokens.length - 1)),
    });
    const both = (a: ReturnType<typeof rows>, b: ReturnType<typeof rows>) => ({
      tokens: Int32Array.from([...a.tokens, ...b.tokens]), positions: Int32Array.from([...a.positions, ...b.positions]),
      seqIds: Int32Array.from([...a.seqIds, ...b.seqIds]), sample: Uint8Array.from([...a.sample, ...b.sample]),
    });
    const first = await ctx.step(both(rows(0, prompt, 0), rows(1, prompt, 0)));
    assert.equal(first.sampledTokens[0], -1, "deferred");
    const reference = first.sampledTokens[1];
    assert.equal(Buffer.from(model.tokenBytes(reference, false)).toString(), ",");
    // Until its pick, the sequence is refused in steps and its sampler takes no tokens.
    await assert.rejects(async () => ctx.step(rows(0, [reference], n)), /awaits its grammar pick/);
    assert.throws(() => ctx.acceptTokens(0, Int32Array.of(reference), false), /awaits its grammar pick/);
    // The pick runs while steps of the other sequence go on; the context cannot be disposed meanwhile.
    const picking = ctx.pickDeferred(Int32Array.of(0));
    assert.throws(() => ctx.pickDeferred(Int32Array.of(0)), /in use/);
    assert.throws(() => ctx.dispose(), /busy with a grammar pick/);
    const beside = ctx.step(rows(1, [reference], n));
    const picked = (await picking).sampledTokens[0];
    assert.equal((await beside).status, "ok");
    assert.throws(() => ctx.pickDeferred(Int32Array.of(1)), /has no deferred pick/);
    let text = Buffer.from(model.tokenBytes(picked, false)).toString();
    let [token, pos] = [picked, n];
    for (let i = 0; i < 16; i++) {
      const r = await ctx.step(rows(0, [token], pos++));
      token = r.sampledTokens[0] >= 0 ? r.sampledTokens[0] : (await ctx.pickDeferred(Int32Array.of(0))).sampledTokens[0];
      if (model.isEog(token)) break;
      text += Buffer.from(model.tokenBytes(token, false)).toString();
    }
    assert.equal(text, " girl called Tom.");
    // A cancelled pick gives no token, and its sampler took none.
    ctx.seqRemove(0, -1, -1);
    ctx.setSampler(0, { ...greedy, grammar: 'root ::= " girl called Tom."' });
    assert.equal((await ctx.step(rows(0, prompt, 0))).sampledTokens[0], -1);
    ctx.cancelPick(0);
    assert.equal((await ctx.pickDeferred(Int32Array.of(0))).sampledTokens[0], -1);
    await ctx.dispose();
  });

  test("schema conversion runs on its own stack: a 10,000-long $ref chain converts (it crashed the JS thread)", async () => {
    const defs: Record<string, object> = {};
    for (let i = 0; i < 10_000; i++) defs[`d${i}`] = i + 1 < 10_000 ? { $ref: `#/$defs/d${i + 1}` } : { type: "string" };
    const grammar = await jsonSchemaToGrammar({ $ref: "#/$defs/d0", $defs: defs });
    assert.ok(grammar.includes("\nref-defs-d9997 ::= ref-defs-d9998\n"), "the chain's last hops are in the grammar");
  });

  test("schemas whose grammar llama.cpp cannot sample are refused at conversion, as bad requests", async () => {
    const leftRecursive = { $ref: "#/$defs/a", $defs: { a: { anyOf: [{ $ref: "#/$defs/b" }, { type: "string" }] }, b: { $ref: "#/$defs/a" } } };
    await assert.rejects(jsonSchemaToGrammar(leftRecursive), (e: unknown) => e instanceof BadRequestError && /left recursion/.test(e.message));
    await assert.rejects(jsonSchemaToGrammar({ type: "string", minLength: 1e9 }), BadRequestError);
  });

  test("top-N logprobs come sorted with the sampled token's logprob", async () => {
    const ctx = await createContext(model, { kvCells: 128, nSeqMax: 1, batchCapacity: 64, nUbatch: 64 });
    ctx.setSampler(0, { ...greedy, topLogprobs: 5, logprobs: true });
    const prompt = model.tokenize(REFERENCE_PROMPT, true, false);
    const r = await ctx.step({ tokens: prompt, positions: Int32Array.from(prompt, (_, k) => k), seqIds: new Int32Array(prompt.length), sample: Uint8Array.from(prompt, (_, k) => +(k === prompt.length - 1)) });
    assert.equal(r.topN, 5);
    assert.equal(r.topIds[0], r.sampledTokens[0]);
    assert.ok(Math.abs(r.topLogprobs[0] - r.sampledLogprobs[0]) < 1e-6);
    for (let k = 1; k < 5; k++) assert.ok(r.topLogprobs[k] <= r.topLogprobs[k - 1]);
    assert.ok(r.sampledLogprobs[0] <= 0);
    await ctx.dispose();
  });

  test("pooled embeddings: one vector per sequence, deterministic", async () => {
    const ctx = await createContext(model, { kvCells: 256, nSeqMax: 4, batchCapacity: 256, nUbatch: 256, embeddings: true, pooling: "mean" });
    const a = [...model.tokenize("The cat sat", true, false)], b = [...model.tokenize("A dog ran far away", true, false)];
    const all = [...a, ...b];
    const plan = {
      tokens: Int32Array.from(all), positions: Int32Array.from([...a.map((_, k) => k), ...b.map((_, k) => k)]),
      seqIds: Int32Array.from([...a.map(() => 0), ...b.map(() => 1)]), sample: new Uint8Array(all.length).fill(1),
    };
    const r1 = await ctx.embed(plan);
    assert.equal(r1.status, "ok");
    assert.deepEqual([...r1.seqIds], [0, 1]);
    assert.equal(r1.embeddings.length, 2 * r1.nEmbd);
    ctx.clear();
    const r2 = await ctx.embed(plan);
    assert.deepEqual(r2.embeddings, r1.embeddings);
    await ctx.dispose();
  });

  describe("errors", () => {
    test("a missing file is NotFound, a non-GGUF file is BadRequest", async () => {
      await assert.rejects(loadModel(path.join(tmp, "nope.gguf")), NotFoundError);
      const junk = path.join(tmp, "junk.gguf");
      writeFileSync(junk, "definitely not a model");
      await assert.rejects(loadModel(junk), (e: Error) => e instanceof BadRequestError && /not a GGUF/.test(e.message));
      await assert.rejects(loadModel(tmp), (e: Error) => e instanceof BadRequestError && /is a directory/.test(e.message));
    });

    test("a model file others can write is read, not mapped: truncated underneath, it decodes on (no SIGBUS)", async () => {
      const shared = path.join(tmp, "shared.gguf");
      writeFileSync(shared, readFileSync(storiesPath));
      chmodSync(shared, 0o666);
      const loaded = await loadModel(shared, {});
      const ctx = await createContext(loaded, { kvCells: 256, nSeqMax: 1, batchCapacity: 64, nUbatch: 64 });
      truncateSync(shared, 1000);
      const [stream] = await decodeTogether(loaded, ctx, [REFERENCE_PROMPT], 48);
      assert.equal(text(stream!), REFERENCE_TEXT);
      await ctx.dispose();
      await loaded.dispose();
    });

    test("a FIFO named as a model is refused at once, not waited on (nobody writes to it)", async () => {
      const fifo = path.join(tmp, "fifo.gguf");
      execFileSync("mkfifo", [fifo]);
      const started = performance.now();
      await assert.rejects(loadModel(fifo), (e: Error) => e instanceof BadRequestError && /is not a regular file/.test(e.message));
      assert.ok(performance.now() - started < 1_000);
    });

    test("a truncated GGUF fails to load with a typed error, and the process keeps running", async () => {
      const cut = path.join(tmp, "truncated.gguf");
      writeFileSync(cut, readFileSync(storiesPath).subarray(0, 600_000));
      await assert.rejects(loadModel(cut), (e: Error) => e instanceof BadRequestError && /failed to load model/.test(e.message));
      const header = path.join(tmp, "header.gguf");
      writeFileSync(header, readFileSync(storiesPath).subarray(0, 2000));
      await assert.rejects(loadModel(header), BadRequestError);
    });

    test("an unknown architecture is named in the error", async () => {
      const buf = readFileSync(storiesPath);
      const key = Buffer.from("general.architecture");
      const at = buf.indexOf(key) + key.length + 4 + 8; // value type (u32) + string length (u64)
      assert.equal(buf.subarray(at, at + 5).toString(), "llama");
      buf.write("zzzzz", at);
      const file = path.join(tmp, "unknown-arch.gguf");
      writeFileSync(file, buf);
      await assert.rejects(loadModel(file), (e: Error) => e instanceof BadRequestError && /zzzzz/.test(e.message));
    });

    test("bad step plans and sampler settings are refused, not crashes", async () => {
      const ctx = await createContext(model, { kvCells: 128, nSeqMax: 2, batchCapacity: 16, nUbatch: 16 });
      const one = { positions: Int32Array.of(0), seqIds: Int32Array.of(0), sample: Uint8Array.of(1) };
      await assert.rejects(async () => ctx.step({ ...one, tokens: Int32Array.of(1) }), /has no sampler/);
      ctx.setSampler(0, greedy);
      await assert.rejects(async () => ctx.step({ ...one, tokens: Int32Array.of(99999) }), /out of range/);
      await assert.rejects(async () => ctx.step({ ...one, tokens: Int32Array.of(1), seqIds: Int32Array.of(5) }), /seqIds out of range/);
      await assert.rejects(async () => ctx.step({ tokens: new Int32Array(17), positions: new Int32Array(17), seqIds: new Int32Array(17), sample: new Uint8Array(17) }), /more than batchCapacity/);
      await assert.rejects(async () => ctx.step({ ...one, tokens: [1] as unknown as Int32Array }), /wrong type/);
      assert.throws(() => ctx.setSampler(0, { ...greedy, grammar: "root ::= (" }), /invalid grammar/);
      assert.throws(() => ctx.setSampler(9, greedy), /out of range/);
      await assert.rejects(jsonSchemaToGrammar("not a schema" as unknown as object), BadRequestError);
      // A second step while one runs is refused by the native busy flag.
      const first = ctx.step({ ...one, tokens: Int32Array.of(1) });
      assert.throws(() => ctx.seqRemove(0, -1, -1), /busy/);
      assert.equal((await first).status, "ok");
      await ctx.dispose();
    });

    test("using a disposed context or model is an error, not a segfault", async () => {
      const m = await loadModel(storiesPath);
      const ctx = await createContext(m, { kvCells: 64, nSeqMax: 1, batchCapacity: 16, nUbatch: 16 });
      assert.throws(() => m.dispose(), /live contexts/);
      await ctx.dispose();
      assert.throws(() => ctx.seqPosMax(0), /disposed/);
      await assert.rejects(async () => ctx.step({ tokens: Int32Array.of(1), positions: Int32Array.of(0), seqIds: Int32Array.of(0), sample: Uint8Array.of(0) }), /disposed/);
      await m.dispose();
      assert.throws(() => m.tokenize("x", false, false), /disposed/);
      await assert.rejects(async () => m.createContext({ kvCells: 64, nSeqMax: 1, batchCapacity: 16, nUbatch: 16 }), /disposed/);
    });
  });

  test("no leaks: 1,000 sequence cycles and 30 context cycles keep memory flat", async () => {
    const before = liveNativeObjects();
    const ctx = await createContext(model, { kvCells: 256, nSeqMax: 4, batchCapacity: 64, nUbatch: 64 });
    const prompt = model.tokenize(REFERENCE_PROMPT, true, false);
    const cycle = async (i: number) => {
      const seq = i % 4;
      ctx.setSampler(seq, { ...greedy, temperature: 0.7, seed: i });
      await ctx.step({ tokens: prompt, positions: Int32Array.from(prompt, (_, k) => k), seqIds: new Int32Array(prompt.length).fill(seq), sample: Uint8Array.from(prompt, (_, k) => +(k === prompt.length - 1)) });
      ctx.seqRemove(seq, -1, -1);
      ctx.clearSampler(seq);
    };
    for (let i = 0; i < 200; i++) await cycle(i); // warm up allocators
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < 1000; i++) await cycle(i);
    global.gc?.();
    const grown = process.memoryUsage().rss - rss0;
    assert.ok(grown < 8 * 1024 * 1024, `RSS grew by ${grown} bytes over 1,000 cycles`);
    await ctx.dispose();
    const rss1 = process.memoryUsage().rss;
    for (let i = 0; i < 30; i++) {
      const c = await createContext(model, { kvCells: 256, nSeqMax: 4, batchCapacity: 64, nUbatch: 64 });
      await c.dispose();
    }
    assert.deepEqual(liveNativeObjects(), before);
    const grownCtx = process.memoryUsage().rss - rss1;
    assert.ok(grownCtx < 16 * 1024 * 1024, `RSS grew by ${grownCtx} bytes over 30 contexts`);
  });
});
