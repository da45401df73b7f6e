// Fill-in-the-middle: the prompt's exact token layout for the qwen2 vocabulary (a random-weight
// tiny-qwen2 with the bundle's real Qwen2 tokenizer), generation ending at the model's
// end-of-FIM tokens, min_tokens holding them off, a model without FIM tokens refused, and
// `insert` in show's capabilities exactly for the model that has them.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { BadRequestError } from "../../src/api/errors.js";
import { buildFimPrompt, type FimRequest } from "../../src/chat/fill-in-middle.js";
import { Engine } from "../../src/engine/engine.js";
import { readGgufHeader } from "../../src/gguf/reader.js";
import { writeSyntheticModel } from "../../src/gguf/synthetic.js";
import { modelCapabilities } from "../../src/models/gguf-info.js";
import { loadModel, SYNC_TOKENIZE_MAX_CHARS, type NativeModel } from "../../src/native/index.js";
import { storiesPath } from "../helpers/models.js";

// Qwen2.5-Coder's FIM tokens: the bundle's Qwen2 vocabulary has [PAD] placeholders in their
// slots, so the fixture writes them there; llama.cpp finds them by name (no fim_*_token_id keys,
// as in Qwen's own GGUFs).
const FIM_PREFIX = 151659;
const FIM_MIDDLE = 151660;
const FIM_SUFFIX = 151661;
const FIM_PAD = 151662;
const REPO_NAME = 151663;
const FILE_SEP = 151664;
const CODER_TOKENS = {
  [FIM_PREFIX]: "<|fim_prefix|>", [FIM_MIDDLE]: "<|fim_middle|>", [FIM_SUFFIX]: "<|fim_suffix|>",
  [FIM_PAD]: "<|fim_pad|>", [REPO_NAME]: "<|repo_name|>", [FILE_SEP]: "<|file_sep|>",
};

const dir = mkdtempSync(path.join(os.tmpdir(), "vllama-fim-"));
const qwenPath = path.join(dir, "tiny-qwen2.gguf");
const PREFIX = "def add(a, b):\n    ";
const SUFFIX = "\n    return c\n";
const fim = (extra: Partial<FimRequest> = {}): FimRequest => ({
  model: "tiny-qwen2", prefix: PREFIX, suffix: SUFFIX, numCtx: 4096, truncatedRoom: 3072, truncate: true, ...extra,
});

let qwen: NativeModel;
before(async () => {
  await writeSyntheticModel({ preset: "tiny-qwen2", type: "f16", out: qwenPath, seed: 7, controlTokens: CODER_TOKENS });
  qwen = await loadModel(qwenPath, {});
});
after(async () => {
  await qwen.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe("fill-in-the-middle prompt", () => {
  const text = (s: string) => [...qwen.tokenize(s, false, false)];

  test("the vocabulary's FIM tokens, and llama.cpp counts pad, repo and file markers as end of generation", () => {
    assert.deepEqual(qwen.info.fim, { pre: FIM_PREFIX, suf: FIM_SUFFIX, mid: FIM_MIDDLE, pad: FIM_PAD, rep: REPO_NAME, sep: FILE_SEP });
    for (const id of [FIM_PAD, REPO_NAME, FILE_SEP]) assert.equal(qwen.isEog(id), true, `token ${id}`);
    for (const id of [FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE]) assert.equal(qwen.isEog(id), false, `token ${id}`);
  });

  test("llama-server's layout: repo and file markers, then prefix, suffix, middle", async () => {
    const tokens = await buildFimPrompt(fim(), qwen);
    assert.deepEqual(tokens, [
      REPO_NAME, ...text("myproject\n"), FILE_SEP, ...text("filename\n"),
      FIM_PREFIX, ...text(PREFIX), FIM_SUFFIX, ...text(SUFFIX), FIM_MIDDLE,
    ]);
    assert.equal(
      qwen.detokenize(Int32Array.from(tokens), false, true),
      `<|repo_name|>myproject\n<|file_sep|>filename\n<|fim_prefix|>${PREFIX}<|fim_suffix|>${SUFFIX}<|fim_middle|>`,
    );
  });

  test("special-token text in the code stays text", async () => {
    const tokens = await buildFimPrompt(fim({ prefix: "x = '<|fim_middle|>'" }), qwen);
    assert.equal(tokens.filter((t) => t === FIM_MIDDLE).length, 1);
    assert.equal(tokens.at(-1), FIM_MIDDLE);
  });

  test("a prompt over the context keeps the prefix's end and the suffix's start, 3:1", async () => {
    const prefix = Array.from({ length: 200 }, (_, i) => `p${i}`).join(" ");
    const suffix = Array.from({ length: 200 }, (_, i) => `s${i}`).join(" ");
    const whole = await buildFimPrompt(fim({ prefix, suffix }), qwen);
    const cut = await buildFimPrompt(fim({ prefix, suffix, numCtx: 128, truncatedRoom: 96 }), qwen);
    assert.ok(whole.length > 128);
    assert.equal(cut.length, 96);
    const markers = cut.indexOf(FIM_PREFIX) + 3;
    const prefixKept = cut.indexOf(FIM_SUFFIX) - cut.indexOf(FIM_PREFIX) - 1;
    const suffixKept = cut.indexOf(FIM_MIDDLE) - cut.indexOf(FIM_SUFFIX) - 1;
    assert.equal(suffixKept, Math.floor((96 - markers) / 4));
    assert.equal(prefixKept, 96 - markers - suffixKept);
    const prefixTokens = text(prefix);
    const suffixTokens = text(suffix);
    assert.deepEqual(cut.slice(cut.indexOf(FIM_PREFIX) + 1, cut.indexOf(FIM_SUFFIX)), prefixTokens.slice(prefixTokens.length - prefixKept));
    assert.deepEqual(cut.slice(cut.indexOf(FIM_SUFFIX) + 1, -1), suffixTokens.slice(0, suffixKept));
    await assert.rejects(buildFimPrompt(fim({ prefix, suffix, numCtx: 128, truncatedRoom: 96, truncate: false }), qwen), /exceeds the context length \(num_ctx 128\)/);
  });

  test("a long prefix or suffix is tokenized off the JS thread, to the same tokens", async () => {
    const unit = "def f(x):\n    return x\n";
    const long = unit.repeat(Math.ceil((SYNC_TOKENIZE_MAX_CHARS + 1) / unit.length));
    const offThread: string[] = [];
    const watched = {
      info: qwen.info,
      tokenize: (text: string, addSpecial: boolean, parseSpecial: boolean) => qwen.tokenize(text, addSpecial, parseSpecial),
      tokenizeAsync: (text: string, addSpecial: boolean, parseSpecial: boolean) => {
        offThread.push(text);
        return qwen.tokenizeAsync(text, addSpecial, parseSpecial);
      },
    };
    const tokens = await buildFimPrompt(fim({ prefix: long, suffix: long, numCtx: 100_000 }), watched);
    assert.deepEqual(offThread, [long, long]);
    assert.deepEqual(tokens, await buildFimPrompt(fim({ prefix: long, suffix: long, numCtx: 100_000 }), qwen));
    assert.deepEqual(tokens.slice(tokens.indexOf(FIM_PREFIX) + 1, tokens.indexOf(FIM_SUFFIX)), text(long));
  });

  test("show lists insert for the qwen2 vocabulary and not for stories260K's", async () => {
    assert.ok(modelCapabilities(await readGgufHeader(qwenPath), "", false).includes("insert"));
    assert.ok(!modelCapabilities(await readGgufHeader(storiesPath), "", false).includes("insert"));
  });
});

describe("fill-in-the-middle generation", () => {
  const engine = new Engine({ modelsDir: dir, kvCells: 1024, contextLength: 512 });
  after(() => engine.close());
  // The random weights never pick FIM_PAD on their own: the bias makes it the model's choice.
  const endsAtPad = { temperature: 0, num_predict: 8, logit_bias: { [FIM_PAD]: 100 } };

  test("/api/generate with a suffix stops at the end-of-FIM token", async () => {
    const r = await engine.generate({ model: qwenPath, prompt: PREFIX, suffix: SUFFIX, stream: false, options: endsAtPad });
    assert.equal(r.done_reason, "stop");
    assert.equal(r.response, "");
    assert.equal(r.prompt_eval_count, (await buildFimPrompt(fim(), qwen)).length);
  });

  test("min_tokens holds the end-of-FIM token off for that many tokens, in the sampler", async () => {
    const r = await engine.generate({ model: qwenPath, prompt: PREFIX, suffix: SUFFIX, stream: false, options: { ...endsAtPad, min_tokens: 3 } });
    assert.equal(r.done_reason, "stop");
    assert.equal(r.eval_count, 3);
    const free = await engine.generate({ model: qwenPath, prompt: PREFIX, suffix: SUFFIX, stream: false, options: { temperature: 0, num_predict: 3 } });
    assert.equal(r.response, free.response, "the best non-ending tokens, as without the bias");
  });

  test("a model without FIM tokens gets a 400 naming the reason; raw and context do not combine with a suffix", async () => {
    const refused = (req: Parameters<Engine["generate"]>[0], message: RegExp) =>
      assert.rejects(engine.generate({ ...req, stream: false }), (e: unknown) => e instanceof BadRequestError && message.test(e.message));
    await refused({ model: storiesPath, prompt: "Once", suffix: "end" },
      /does not support insert: its vocabulary has no fill-in-the-middle prefix, suffix, middle token$/);
    await refused({ model: qwenPath, prompt: "a", suffix: "b", raw: true }, /^raw mode does not support suffix$/);
    await refused({ model: qwenPath, prompt: "a", suffix: "b", context: [1, 2] }, /^context cannot be combined with suffix$/);
  });
});
