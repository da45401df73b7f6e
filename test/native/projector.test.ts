// llama.cpp's multimodal library in the addon, on the tiny-vision pair written by the project's
// fixture generator: projector loading, image -> chunks -> embedding rows -> a sequence's cache,
// refused inputs, teardown.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { BadRequestError } from "../../src/api/errors.js";
import { createContext, initBackend, liveNativeObjects, loadModel, loadProjector, toTypedError } from "../../src/native/index.js";
import type { NativeContext, NativeMediaChunk, NativeModel, NativeProjector, PromptChunk, SamplerParams } from "../../src/native/index.js";
import { encodePng, imageFile, testImage, tinyVisionModel, webpHeaderOnly } from "../helpers/images.js";

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
          const r = await ctx.decodeEmbeddings({ seqId, embeddings: await projector.encode(chunk), positions: chunk.positions(pos), nonCausal: chunk.nonCausal });
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

    test("rows are checked: whole rows, one position each, within batchCapacity", async () => {
      const width = projector.embeddingLength;
      await assert.rejects(async () => ctx.decodeEmbeddings({ seqId: 0, embeddings: new Float32Array(width + 1), positions: Int32Array.of(0), nonCausal: false }), /whole rows/);
      await assert.rejects(async () => ctx.decodeEmbeddings({ seqId: 0, embeddings: new Float32Array(width * 2), positions: Int32Array.of(0), nonCausal: false }), /one \(or 4/);
      await assert.rejects(async () => ctx.decodeEmbeddings({ seqId: 0, embeddings: new Float32Array(width * 65), positions: new Int32Array(65), nonCausal: false }), /batchCapacity/);
      await assert.rejects(async () => ctx.decodeEmbeddings({ seqId: 9, embeddings: new Float32Array(width), positions: Int32Array.of(0), nonCausal: false }), /seqId/);
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
