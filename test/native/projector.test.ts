// llama.cpp's multimodal library in the addon, on the tiny-vision pair written by the project's
// fixture generator: projector loading, image -> chunks -> embedding rows -> a sequence's cache,
// refused inputs, teardown.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { BadRequestError } from "../../src/api/errors.js";
import { createContext, initBackend, liveNativeObjects, loadModel, loadProjector, toTypedError } from "../../src/native/index.js";
import type { NativeContext, NativeMediaChunk, NativeModel, NativeProjector, PromptChunk, SamplerParams, TextChunk } from "../../src/native/index.js";
import {
  encodePng, imageFile, testImage, tinyVisionModel, VISION_MROPE_REFERENCE_ANSWER, VISION_REFERENCE_QUESTION, webpHeaderOnly,
} from "../helpers/images.js";
import type { SyntheticVisionPreset } from "../../src/gguf/synthetic-projector.js";

const greedy: SamplerParams = {
  temperature: 0, topK: 40, topP: 1, minP: 0, typicalP: 1, seed: 1, repeatLastN: 64, repeatPenalty: 1, presencePenalty: 0, frequencyPenalty: 0,
};

const media = (chunks: PromptChunk[]) => chunks.filter((c): c is NativeMediaChunk => c.type !== "text");

describe("native projector (tiny-vision)", () => {
  let model: NativeModel;
  let projector: NativeProjector;

  before(async () => {
    initBackend("cpu");
    const files = await tinyVisionModel();
    model = await loadModel(files.model);
    projector = await loadProjector(model, files.projector);
  });

  after(async () => {
    await projector?.dispose();
    await model?.dispose();
  });

  test("reports what the projector takes", () => {
    assert.equal(projector.vision, true);
    assert.equal(projector.audio, false);
    assert.equal(projector.mrope, false);
    assert.equal(projector.embeddingLength, model.info.embeddingLength);
    assert.equal(typeof projector.marker, "string");
  });

  test("a prompt with an image becomes text, image, text chunks; the image's id is its SHA-256", async () => {
    const png = testImage();
    const chunks = await projector.tokenize(`USER: ${projector.marker}\nWhat is this?`, [png], { addSpecial: true });
    assert.deepEqual(chunks.map((c) => c.type), ["text", "image", "text"]);
    const [image] = media(chunks);
    assert.equal(image!.nTokens, 16, "32 x 32 pixels in 8 x 8 patches");
    assert.equal(image!.nPos, 16);
    assert.equal(image!.nonCausal, false);
    assert.equal(image!.id, createHash("sha256").update(png).digest("hex"));
    assert.deepEqual([...image!.positions(5)], Array.from({ length: 16 }, (_, i) => 5 + i));
    const first = chunks[0]!;
    assert.ok(first.type === "text" && first.tokens[0] === model.info.bos, "addSpecial adds the model's BOS");
  });

  test("encoding gives nTokens rows of the model's width, the same for the same image and different for another", async () => {
    const [a] = media(await projector.tokenize(projector.marker, [testImage(0)]));
    const [b] = media(await projector.tokenize(projector.marker, [testImage(1)]));
    const rowsA = await projector.encode(a!);
    assert.equal(rowsA.length, 16 * projector.embeddingLength);
    assert.ok(rowsA.every(Number.isFinite));
    assert.deepEqual(await projector.encode(a!), rowsA);
    assert.notDeepEqual(await projector.encode(b!), rowsA);
  });

  test("prepare reads a file once: its id, size and media chunks; a prompt of its placeholder tokenizes as the file's", async () => {
    const png = encodePng(40, 24, (x, y) => [x * 6, y * 10, 128]);
    const prepared = await projector.prepare(png);
    assert.deepEqual({ ...prepared, chunks: prepared.chunks.map((c) => c.type) },
      { id: createHash("sha256").update(png).digest("hex"), width: 40, height: 24, audio: false, chunks: ["image"] });
    const text = `USER: ${projector.marker}\nWhat is this?`;
    const fromFile = await projector.tokenize(text, [png], { addSpecial: true });
    const fromPlaceholder = await projector.tokenize(text, [prepared], { addSpecial: true });
    const shape = (chunks: PromptChunk[]) => chunks.map((c) => (c.type === "text" ? [...c.tokens] : [c.type, c.id, c.nTokens, c.nPos, c.nonCausal]));
    assert.deepEqual(shape(fromPlaceholder), shape(fromFile));
    assert.deepEqual(shape(prepared.chunks), shape(media(fromFile)));
    assert.deepEqual(await projector.encode(prepared.chunks[0]!), await projector.encode(media(fromFile)[0]!));
    // A placeholder's chunk has no pixels: its encode fails, and the projector goes on.
    await assert.rejects(async () => projector.encode(media(fromPlaceholder)[0]!), /media encode failed/);
    assert.equal((await projector.encode(prepared.chunks[0]!)).length, prepared.chunks[0]!.nTokens * projector.embeddingLength);
  });

  test("prepare's errors name the file as told; tokenize refuses placeholders that prepare did not make", async () => {
    await assert.rejects(async () => projector.prepare(Buffer.from("no image"), { name: "image 3" }), /^Error: image 3 cannot be decoded/);
    await assert.rejects(async () => projector.prepare(encodePng(64, 64, () => [1, 2, 3]), { maxPixels: 1000 }), /media is 64x64 pixels, more than the limit of 1000/);
    for (const bad of [{ id: "", width: 4, height: 4 }, { id: "x", width: 0, height: 4 }, { id: "x", width: 4.5, height: 4 }, { id: "x", width: 4 }, [1, 2], { id: "x", width: 400, height: 2, audio: true }]) {
      await assert.rejects(async () => projector.tokenize(projector.marker, [bad as never]), /media placeholder must be|media must be an array|audio placeholder's height must be 1/, JSON.stringify(bad));
    }
  });

  test("one encode at a time; a second is refused, not raced", async () => {
    const [a] = media(await projector.tokenize(projector.marker, [testImage()]));
    const first = projector.encode(a!);
    await assert.rejects(async () => projector.encode(a!), /busy/);
    await first;
  });

  describe("decoding image rows into a sequence", () => {
    let ctx: NativeContext;
    before(async () => {
      ctx = await createContext(model, { kvCells: 512, nSeqMax: 4, batchCapacity: 64, nUbatch: 64 });
    });
    after(async () => ctx?.dispose());

    /** Prefills text, image rows, text for `seqId` (each chunk its own call), then greedy-decodes `n` tokens alone:
     * the tokens and their logprobs (a random-weight model's greedy tokens hardly depend on an image; its logprobs do). */
    async function describeImage(seqId: number, png: Buffer, n: number): Promise<{ tokens: number[]; logprobs: number[] }> {
      ctx.setSampler(seqId, { ...greedy, logprobs: true });
      const chunks = await projector.tokenize(`USER: ${projector.marker}\nWhat is this?\nASSISTANT:`, [png], { addSpecial: true });
      let pos = 0;
      const tokens: number[] = [];
      const logprobs: number[] = [];
      for (const [i, chunk] of chunks.entries()) {
        if (chunk.type === "text") {
          const last = i === chunks.length - 1;
          const r = await ctx.step({
            tokens: chunk.tokens, positions: Int32Array.from(chunk.tokens, (_, k) => pos + k),
            seqIds: new Int32Array(chunk.tokens.length).fill(seqId), sample: Uint8Array.from(chunk.tokens, (_, k) => +(last && k === chunk.tokens.length - 1)),
          });
          assert.equal(r.status, "ok");
          if (last) {
            tokens.push(r.sampledTokens[0]!);
            logprobs.push(r.sampledLogprobs[0]!);
          }
          pos += chunk.tokens.length;
        } else {
          const r = await ctx.decodeEmbeddings({
            seqIds: new Int32Array(chunk.nTokens).fill(seqId), embeddings: await projector.encode(chunk), positions: chunk.positions(pos), nonCausal: chunk.nonCausal,
          });
          assert.equal(r.status, "ok");
          pos += chunk.nPos;
          assert.equal(ctx.seqPosMax(seqId), pos - 1, "the image's rows are in the sequence's cache");
        }
      }
      while (tokens.length < n) {
        const r = await ctx.step({ tokens: Int32Array.of(tokens.at(-1)!), positions: Int32Array.of(pos++), seqIds: Int32Array.of(seqId), sample: Uint8Array.of(1) });
        tokens.push(r.sampledTokens[0]!);
        logprobs.push(r.sampledLogprobs[0]!);
      }
      ctx.seqRemove(seqId, -1, -1);
      ctx.clearSampler(seqId);
      return { tokens, logprobs };
    }

    test("the answer depends on the image and is the same every time", async () => {
      const a = await describeImage(0, testImage(0), 8);
      assert.deepEqual(await describeImage(1, testImage(0), 8), a);
      assert.notDeepEqual((await describeImage(2, testImage(3), 8)).logprobs, a.logprobs);
    });

    test("two sequences' images decoded in one call: each answers as it does alone", async () => {
      const pngs = [testImage(0), testImage(3)];
      const alone = [await describeImage(0, pngs[0]!, 8), await describeImage(1, pngs[1]!, 8)];
      const prompts = await Promise.all(pngs.map((png) => projector.tokenize(`USER: ${projector.marker}\nWhat is this?\nASSISTANT:`, [png], { addSpecial: true })));
      const parts = prompts.map((chunks) => {
        assert.deepEqual(chunks.map((c) => c.type), ["text", "image", "text"]);
        return { before: (chunks[0] as TextChunk).tokens, image: chunks[1] as NativeMediaChunk, after: (chunks[2] as TextChunk).tokens };
      });
      const seqIds = [0, 1];
      for (const [k, p] of parts.entries()) {
        ctx.setSampler(seqIds[k]!, { ...greedy, logprobs: true });
        const r = await ctx.step({ tokens: p.before, positions: Int32Array.from(p.before, (_, i) => i), seqIds: new Int32Array(p.before.length).fill(seqIds[k]!), sample: new Uint8Array(p.before.length) });
        assert.equal(r.status, "ok");
      }
      const rows: Array<{ seqIds: Int32Array; embeddings: Float32Array; positions: Int32Array }> = [];
      // One encode at a time (the projector refuses a second).
      for (const [k, p] of parts.entries()) {
        rows.push({ seqIds: new Int32Array(p.image.nTokens).fill(seqIds[k]!), embeddings: await projector.encode(p.image), positions: p.image.positions(p.before.length) });
      }
      const joined = (key: "seqIds" | "positions") => Int32Array.from(rows.flatMap((r) => [...r[key]]));
      const r = await ctx.decodeEmbeddings({ seqIds: joined("seqIds"), embeddings: Float32Array.from(rows.flatMap((x) => [...x.embeddings])), positions: joined("positions"), nonCausal: parts[0]!.image.nonCausal });
      assert.equal(r.status, "ok");
      const pos = parts.map((p) => p.before.length + p.image.nPos);
      for (const k of [0, 1]) assert.equal(ctx.seqPosMax(seqIds[k]!), pos[k]! - 1, "each image's rows are in its own sequence");
      const tokens: number[][] = [[], []];
      const logprobs: number[][] = [[], []];
      let input = parts.map((p) => p.after);
      while (tokens[0]!.length < 8) {
        const r = await ctx.step({
          tokens: Int32Array.from(input.flatMap((t) => [...t])),
          positions: Int32Array.from(input.flatMap((t, k) => [...t].map((_, i) => pos[k]! + i))),
          seqIds: Int32Array.from(input.flatMap((t, k) => [...t].map(() => seqIds[k]!))),
          sample: Uint8Array.from(input.flatMap((t) => [...t].map((_, i) => +(i === t.length - 1)))),
        });
        assert.equal(r.status, "ok");
        input.forEach((t, k) => {
          pos[k]! += t.length;
          tokens[k]!.push(r.sampledTokens[k]!);
          logprobs[k]!.push(r.sampledLogprobs[k]!);
        });
        input = tokens.map((t) => Int32Array.of(t.at(-1)!));
      }
      for (const k of [0, 1]) {
        ctx.seqRemove(seqIds[k]!, -1, -1);
        ctx.clearSampler(seqIds[k]!);
        assert.deepEqual(tokens[k], alone[k]!.tokens);
        for (const [i, lp] of logprobs[k]!.entries()) assert.ok(Math.abs(lp - alone[k]!.logprobs[i]!) < 1e-3, `token ${i}: ${lp} batched, ${alone[k]!.logprobs[i]} alone`);
      }
    });

    test("rows are checked: whole rows, a sequence and one position each, within batchCapacity", async () => {
      const width = projector.embeddingLength;
      const one = Int32Array.of(0);
      await assert.rejects(async () => ctx.decodeEmbeddings({ seqIds: one, embeddings: new Float32Array(width + 1), positions: one, nonCausal: false }), /whole rows/);
      await assert.rejects(async () => ctx.decodeEmbeddings({ seqIds: Int32Array.of(0, 0), embeddings: new Float32Array(width * 2), positions: one, nonCausal: false }), /rows.positions must have 2 entries \(1 a row\), not 1/);
      await assert.rejects(async () => ctx.decodeEmbeddings({ seqIds: Int32Array.of(0, 0), embeddings: new Float32Array(width * 2), positions: new Int32Array(8), nonCausal: false }), /must have 2 entries \(1 a row\), not 8/);
      await assert.rejects(async () => ctx.decodeEmbeddings({ seqIds: one, embeddings: new Float32Array(width * 2), positions: Int32Array.of(0, 1), nonCausal: false }), /seqIds must have one entry per row/);
      await assert.rejects(async () => ctx.decodeEmbeddings({ seqIds: new Int32Array(65), embeddings: new Float32Array(width * 65), positions: new Int32Array(65), nonCausal: false }), /batchCapacity/);
      await assert.rejects(async () => ctx.decodeEmbeddings({ seqIds: Int32Array.of(9), embeddings: new Float32Array(width), positions: one, nonCausal: false }), /seqIds out of range/);
    });
  });

  describe("image formats: stb_image's, and WebP through libwebp", () => {
    const rowsOf = async (file: Buffer) => projector.encode(media(await projector.tokenize(projector.marker, [file]))[0]!);
    /** Root-mean-square difference of two row sets, relative to the first's RMS. */
    const distance = (a: Float32Array, b: Float32Array) => {
      let diff = 0;
      let norm = 0;
      a.forEach((x, i) => {
        diff += (x - b[i]!) ** 2;
        norm += x ** 2;
      });
      return Math.sqrt(diff / norm);
    };
    let pngRows: Float32Array;
    before(async () => (pngRows = await rowsOf(testImage(0))));

    test("BMP and lossless WebP hold PNG's pixels: the same rows", async () => {
      assert.deepEqual(await rowsOf(imageFile("test.bmp")), pngRows);
      assert.deepEqual(await rowsOf(imageFile("lossless.webp")), pngRows);
    });

    test("JPEG, lossy WebP and GIF (first frame of an animation too) come close to PNG's rows; another image does not", async () => {
      const other = distance(pngRows, await rowsOf(testImage(3)));
      for (const name of ["test.jpg", "lossy.webp", "test.gif", "animated.gif"] as const) {
        const d = distance(pngRows, await rowsOf(imageFile(name)));
        assert.ok(d < other / 4, `${name}: ${d.toFixed(4)} from PNG's rows, against ${other.toFixed(4)} for another image`);
      }
    });

    test("a WebP's id is stable: the same file, the same id; another file, another id", async () => {
      const id = async (file: Buffer) => media(await projector.tokenize(projector.marker, [file]))[0]!.id;
      assert.equal(await id(imageFile("lossy.webp")), await id(imageFile("lossy.webp")));
      assert.notEqual(await id(imageFile("lossy.webp")), await id(imageFile("lossless.webp")));
    });

    test("a WebP claiming more pixels than allowed is refused before decoding; a damaged one cannot be decoded", async () => {
      await assert.rejects(async () => projector.tokenize(projector.marker, [webpHeaderOnly(16384, 16384)]), /image 1 is 16384x16384 pixels, more than the limit of 67108864/);
      await assert.rejects(async () => projector.tokenize(projector.marker, [webpHeaderOnly(40, 30)]), /image 1 cannot be decoded \(a damaged WebP file\)/);
    });
  });

  describe("refused inputs are the caller's fault, with a reason", () => {
    test("bytes that are no image", async () => {
      await assert.rejects(async () => projector.tokenize(projector.marker, [Buffer.from("not an image at all")]), (e: Error) => {
        assert.ok(toTypedError(e) instanceof BadRequestError);
        return /image 1 cannot be decoded/.test(e.message);
      });
    });

    test("an image claiming more pixels than allowed is refused before it is decoded", async () => {
      const png = encodePng(64, 64, () => [1, 2, 3]);
      await assert.rejects(async () => projector.tokenize(projector.marker, [png], { maxPixels: 1000 }), /64x64 pixels, more than the limit of 1000/);
    });

    test("more images than markers", async () => {
      await assert.rejects(async () => projector.tokenize(projector.marker, [testImage(), testImage(1)]), /number of media markers in text \(1\) does not match number of bitmaps \(2\)/);
    });
  });

  test("teardown: the model outlives its projector; a disposed projector is an error, not a segfault", async () => {
    const before = liveNativeObjects();
    const files = await tinyVisionModel();
    const m = await loadModel(files.model);
    const p = await loadProjector(m, files.projector);
    assert.equal(liveNativeObjects().projectors, before.projectors + 1);
    assert.throws(() => m.dispose(), /live contexts or a projector/);
    const [chunk] = media(await p.tokenize(p.marker, [testImage()]));
    const encoding = p.encode(chunk!);
    assert.throws(() => p.dispose(), /busy/);
    await encoding;
    await p.dispose();
    await assert.rejects(async () => p.tokenize(p.marker, [testImage()]), /disposed/);
    await assert.rejects(async () => p.encode(chunk!), /disposed/);
    await m.dispose();
    assert.deepEqual(liveNativeObjects(), before);
  });
});


/** A pair's model, projector and a context, opened before a describe block's tests and closed after them. */
function pairDuring(preset: SyntheticVisionPreset, kvCells = 256): { model: NativeModel; projector: NativeProjector; ctx: NativeContext } {
  const pair = {} as { model: NativeModel; projector: NativeProjector; ctx: NativeContext };
  before(async () => {
    initBackend("cpu");
    const files = await tinyVisionModel(preset);
    pair.model = await loadModel(files.model);
    pair.projector = await loadProjector(pair.model, files.projector, 1);
    pair.ctx = await createContext(pair.model, { kvCells, nSeqMax: 4, batchCapacity: 64, nUbatch: 64 });
  });
  after(async () => {
    await pair.ctx?.dispose();
    await pair.projector?.dispose();
    await pair.model?.dispose();
  });
  return pair;
}
// Qwen2-VL's shape (tiny-vision-mrope): an image keeps its aspect, its rows a grid at the image's
// start position with their place in the other M-RoPE dimensions.
describe("native projector, M-RoPE (tiny-vision-mrope)", () => {
  const pair = pairDuring("tiny-vision-mrope", 512);

  test("a 64 x 32 image is a 4 x 2 grid of rows: all at the start position in t, their row and column in y and x", async () => {
    assert.equal(pair.projector.mrope, true);
    assert.equal(pair.projector.vision, true);
    assert.equal(pair.projector.embeddingLength, pair.model.info.embeddingLength);
    const png = encodePng(64, 32, (x, y) => [x * 4, y * 8, 128]);
    const [image] = media(await pair.projector.tokenize(`${pair.projector.marker} What is this?`, [png], { addSpecial: true }));
    assert.equal(image!.nTokens, 8);
    assert.equal(image!.nPos, 4, "positions advance by the grid's longer side");
    const grid = [0, 1, 2, 3, 4, 5, 6, 7];
    assert.deepEqual([...image!.positions(5)], [
      ...grid.map(() => 5),
      ...grid.map((i) => 5 + Math.floor(i / 4)),
      ...grid.map((i) => 5 + (i % 4)),
      ...grid.map(() => 0),
    ]);
  });

  // M-RoPE positions as mtmd_helper_eval_chunks counts them: text one position a token, an
  // image's rows 4 each (positions(pos)), the text after it nPos later. The same prompt text as
  // llama-mtmd-cli's (the model's ChatML template, the marker before the question).
  test("greedy output for an image prompt equals llama-mtmd-cli's on the same files (test/helpers/images.ts)", async () => {
    const text = `<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n${pair.projector.marker}${VISION_REFERENCE_QUESTION}<|im_end|>\n<|im_start|>assistant\n`;
    const chunks = await pair.projector.tokenize(text, [testImage(0)], { addSpecial: true });
    pair.ctx.setSampler(1, greedy);
    let pos = 0;
    const answer: number[] = [];
    for (const [i, chunk] of chunks.entries()) {
      if (chunk.type !== "text") {
        const r = await pair.ctx.decodeEmbeddings({
          seqIds: new Int32Array(chunk.nTokens).fill(1), embeddings: await pair.projector.encode(chunk), positions: chunk.positions(pos), nonCausal: chunk.nonCausal,
        });
        assert.equal(r.status, "ok");
        pos += chunk.nPos;
        continue;
      }
      const last = i === chunks.length - 1;
      const r = await pair.ctx.step({
        tokens: chunk.tokens, positions: Int32Array.from(chunk.tokens, (_, k) => pos + k),
        seqIds: new Int32Array(chunk.tokens.length).fill(1), sample: Uint8Array.from(chunk.tokens, (_, k) => +(last && k === chunk.tokens.length - 1)),
      });
      pos += chunk.tokens.length;
      if (last) answer.push(r.sampledTokens[0]!);
    }
    while (answer.length < 12) {
      const r = await pair.ctx.step({ tokens: Int32Array.of(answer.at(-1)!), positions: Int32Array.of(pos++), seqIds: Int32Array.of(1), sample: Uint8Array.of(1) });
      answer.push(r.sampledTokens[0]!);
    }
    pair.ctx.seqRemove(1, -1, -1);
    pair.ctx.clearSampler(1);
    assert.equal(pair.model.detokenize(Int32Array.from(answer), false, false), VISION_MROPE_REFERENCE_ANSWER);
  });

  test("the rows decode into a sequence with 4 positions a row", async () => {
    const [image] = media(await pair.projector.tokenize(pair.projector.marker, [testImage(0)]));
    const rows = await pair.projector.encode(image!);
    assert.equal(rows.length, image!.nTokens * pair.projector.embeddingLength);
    assert.ok(rows.every(Number.isFinite));
    const r = await pair.ctx.decodeEmbeddings({ seqIds: new Int32Array(image!.nTokens), embeddings: rows, positions: image!.positions(0), nonCausal: image!.nonCausal });
    assert.equal(r.status, "ok");
    assert.equal(pair.ctx.seqPosMax(0), 0, "every row at the image's start position");
    pair.ctx.seqRemove(0, -1, -1);
  });

  test("rows with one position each (not 4) are refused, not read past their end", async () => {
    const [image] = media(await pair.projector.tokenize(pair.projector.marker, [testImage(0)]));
    const rows = await pair.projector.encode(image!);
    const n = image!.nTokens;
    const positions = image!.positions(0);
    for (const wrong of [positions.subarray(0, n), positions.subarray(0, 3 * n), Int32Array.from({ length: 4 * n + 1 })]) {
      await assert.rejects(async () => pair.ctx.decodeEmbeddings({ seqIds: new Int32Array(n), embeddings: rows, positions: wrong, nonCausal: false }),
        new RegExp(`rows.positions must have ${4 * n} entries \\(4 a row, M-RoPE\\), not ${wrong.length}`));
    }
    assert.equal(pair.ctx.seqPosMax(0), -1, "nothing was decoded");
  });
});

// Qwen3-VL's shape (tiny-vision-qwen3vl): a row is the model's input width, its embedding and one
// deepstack embedding per early layer side by side (llama_model_n_embd_inp), not its embedding width.
describe("native projector, deepstack (tiny-vision-qwen3vl)", () => {
  const pair = pairDuring("tiny-vision-qwen3vl");

  test("rows are 3 embeddings wide and decode; rows of the embedding width alone are refused", async () => {
    assert.equal(pair.projector.mrope, true);
    assert.equal(pair.projector.embeddingLength, 3 * pair.model.info.embeddingLength);
    // 64 x 32 pixels: 8 rows, whose 8 x 64 floats are no whole number of 192-float rows.
    const [image] = media(await pair.projector.tokenize(pair.projector.marker, [encodePng(64, 32, (x, y) => [x * 4, y * 8, 64])]));
    assert.equal(image!.nTokens, 8);
    const rows = await pair.projector.encode(image!);
    assert.equal(rows.length, image!.nTokens * 3 * pair.model.info.embeddingLength);
    const narrow = rows.subarray(0, image!.nTokens * pair.model.info.embeddingLength);
    await assert.rejects(async () => pair.ctx.decodeEmbeddings({ seqIds: new Int32Array(image!.nTokens), embeddings: narrow, positions: image!.positions(0), nonCausal: false }),
      /rows.embeddings must hold whole rows of 192 floats/);
    const r = await pair.ctx.decodeEmbeddings({ seqIds: new Int32Array(image!.nTokens), embeddings: rows, positions: image!.positions(0), nonCausal: image!.nonCausal });
    assert.equal(r.status, "ok");
    pair.ctx.seqRemove(0, -1, -1);
  });
});

// Gemma 3's shape (tiny-vision-gemma3): every image is resized to the projector's square and its
// patches averaged 4 x 4, and its rows attend to each other both ways, as mtmd_decode_use_non_causal says.
describe("native projector, non-causal rows (tiny-vision-gemma3)", () => {
  const pair = pairDuring("tiny-vision-gemma3");

  test("any image is 16 rows, marked non-causal, and they decode", async () => {
    const { projector, ctx } = pair;
    assert.equal(projector.mrope, false);
    for (const png of [testImage(0), encodePng(64, 32, (x, y) => [x * 4, y * 8, 64])]) {
      const [image] = media(await projector.tokenize(projector.marker, [png]));
      assert.equal(image!.nTokens, 16);
      assert.equal(image!.nonCausal, true);
    }
    const [image] = media(await projector.tokenize(projector.marker, [testImage(0)]));
    const r = await ctx.decodeEmbeddings({ seqIds: new Int32Array(16), embeddings: await projector.encode(image!), positions: image!.positions(0), nonCausal: true });
    assert.equal(r.status, "ok");
    assert.equal(ctx.seqPosMax(0), 15);
    ctx.seqRemove(0, -1, -1);
  });
});
