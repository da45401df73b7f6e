// Images through the engine, on the tiny-vision pair (a LLaVA-1.5-shaped projector over a tiny
// llama) and pairs of LLaVA-1.6's, Idefics3's, Qwen2-VL's, Qwen3-VL's and Gemma 3's shapes, each
// created in a temporary store as a model layer plus a projector layer: image rows in the shared steps beside
// other sequences, the prefix cache keyed by image content, refused inputs, cancellation.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { BadRequestError, CancelledError } from "../../src/api/errors.js";
import type { ChatRequest } from "../../src/api/ollama.js";
import { pino } from "pino";
import { Engine } from "../../src/engine/engine.js";
import type { SyntheticVisionPreset } from "../../src/gguf/synthetic-projector.js";
import { pull } from "../../src/models/registry.js";
import { LAYER_MEDIA_TYPES } from "../../src/models/types.js";
import { startServer, type RunningServer } from "../../src/server/index.js";
import { initBackend, liveNativeObjects } from "../../src/native/index.js";
import { ImageServer } from "../helpers/image-server.js";
import { TestRegistry } from "../helpers/registry.js";
import {
  imageFile, testImage, tinyVisionModel, VISION_GEMMA3_REFERENCE_ANSWER, VISION_IDEFICS3_REFERENCE_ANSWER, VISION_MROPE_REFERENCE_ANSWER, VISION_QWEN3VL_REFERENCE_ANSWER, VISION_REFERENCE_ANSWER,
  VISION_REFERENCE_QUESTION, VISION_TILES_REFERENCE_ANSWER,
} from "../helpers/images.js";
import { storiesPath } from "../helpers/models.js";

const MODEL = "tiny-vision";
// Greedy, as long as the llama-mtmd-cli reference (test/helpers/images.ts).
const greedy = { temperature: 0, num_predict: 12 };
const image = (seed: number) => testImage(seed).toString("base64");

function ask(images: string[], question = "What is in this picture?"): ChatRequest & { stream: false } {
  return { model: MODEL, stream: false, options: greedy, messages: [{ role: "user", content: question, images }] };
}

async function createVisionModel(engine: Engine, name = MODEL, preset: SyntheticVisionPreset = "tiny-vision"): Promise<void> {
  const files = await tinyVisionModel(preset);
  const digestOf = (file: string) => `sha256:${createHash("sha256").update(readFileSync(file)).digest("hex")}`;
  const upload: Record<string, string> = {};
  for (const [name, file] of [["model.gguf", files.model], ["mmproj.gguf", files.projector]] as const) {
    upload[name] = digestOf(file);
    await engine.writeBlob(upload[name], createReadStream(file));
  }
  for await (const _ of engine.create({ model: name, files: upload })) { /* progress */ }
}

/** A server over the file's engine for one describe block; the engine outlives the server. */
function serveDuring(engine: () => Engine): { readonly url: string } {
  const served = { url: "" };
  let server: RunningServer | undefined;
  before(async () => {
    server = await startServer({ engine: engine(), config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "10mb" }, logger: pino({ level: "silent" }) });
    served.url = `http://127.0.0.1:${server.port}`;
  });
  after(async () => server?.close());
  return served;
}

describe("engine with images (tiny-vision)", () => {
  let engine: Engine;
  const modelsDir = mkdtempSync(path.join(os.tmpdir(), "vllama-vision-store-"));
  before(async () => {
    initBackend("cpu");
    engine = new Engine({ modelsDir, gpu: "cpu" });
    await createVisionModel(engine);
  });
  after(async () => engine?.close());

  test("show reports vision", async () => {
    const shown = await engine.show({ model: MODEL });
    assert.ok(shown.capabilities?.includes("vision"), String(shown.capabilities));
  });

  test("the same image twice: the second request's image rows come from the prefix cache, the answer is identical", async () => {
    const first = await engine.chat(ask([image(7)]));
    const hitsBefore = engine.stats()[0]!.kv.prefixHits;
    const second = await engine.chat(ask([image(7)]));
    const hits = engine.stats()[0]!.kv.prefixHits - hitsBefore;
    assert.equal(second.message.content, first.message.content);
    assert.ok(hits >= 16, `only ${hits} prompt tokens came from the cache (the image alone is 16)`);
    assert.equal(second.prompt_eval_count, first.prompt_eval_count);
  });

  // Distinct questions, as the benchmark asks: the prompts part inside a block that holds the
  // image's last rows, which each request computes itself (the prefix cache shares full blocks).
  test("one image in 8 requests at once with distinct questions, beside a text request: decoded and encoded once, each answer as alone", async () => {
    const encodedBefore = engine.stats()[0]?.imagesEncoded ?? 0;
    const preparedBefore = engine.stats()[0]?.imagesPrepared ?? 0;
    const [text, ...answers] = await Promise.all([
      engine.chat(ask([], "Tell me a story.")),
      ...Array.from({ length: 8 }, (_, i) => engine.chat(ask([image(60)], `Question ${i}: what is in this picture?`))),
    ]);
    assert.equal(engine.stats()[0]!.imagesEncoded - encodedBefore, 1);
    assert.equal(engine.stats()[0]!.imagesPrepared - preparedBefore, 1, "the other requests took the first one's decoded image");
    assert.equal(text!.done, true);
    for (const i of [0, 7]) {
      assert.equal(answers[i]!.message.content, (await engine.chat(ask([image(60)], `Question ${i}: what is in this picture?`))).message.content);
    }
    await Promise.all([61, 62].map((seed) => engine.chat(ask([image(seed)]))));
    assert.equal(engine.stats()[0]!.imagesEncoded - encodedBefore, 3, "other images are encoded");
    assert.equal(engine.stats()[0]!.imagesPrepared - preparedBefore, 3, "and decoded");
  });

  test("with the prefix cache off, requests sharing one image each encode it, and answer as with the cache on", async () => {
    const uncached = new Engine({ modelsDir, gpu: "cpu", prefixCache: false });
    try {
      const questions = Array.from({ length: 4 }, (_, i) => `Question ${i}: what is in this picture?`);
      const answers = await Promise.all(questions.map((q) => uncached.chat(ask([image(70)], q))));
      assert.equal(uncached.stats()[0]!.imagesEncoded, 4, "no request is served another's encode");
      assert.equal(uncached.stats()[0]!.imagesPrepared, 4, "nor another's decoded image");
      assert.equal(uncached.stats()[0]!.kv.prefixHits, 0);
      for (const [i, q] of questions.entries()) assert.equal(answers[i]!.message.content, (await engine.chat(ask([image(70)], q))).message.content);
    } finally {
      await uncached.close();
    }
  });

  test("parity with llama.cpp's llama-mtmd-cli, alone and with 15 other sequences (text and images) in the same steps", async () => {
    const reference = ask([image(0)], VISION_REFERENCE_QUESTION);
    const alone = await engine.chat(reference);
    assert.equal(alone.message.content, VISION_REFERENCE_ANSWER);
    const others = Array.from({ length: 15 }, (_, i) =>
      i % 3 === 0 ? ask([], `Tell me about the number ${i}.`) : ask([image(10 + i)], `Question ${i} about the picture?`));
    const together = await Promise.all([engine.chat(reference), ...others.map((r) => engine.chat(r))]);
    assert.equal(together[0]!.message.content, VISION_REFERENCE_ANSWER);
    for (const [i, r] of together.slice(1).entries()) {
      assert.equal(r.message.content, (await engine.chat(others[i]!)).message.content, `sequence ${i + 1}`);
    }
  });

  test("/api/generate takes images too, templated as the user's turn", async () => {
    const r = await engine.generate({ model: MODEL, prompt: "What is this?", images: [image(2)], stream: false, options: greedy });
    assert.equal(r.done, true);
    assert.ok(r.prompt_eval_count! > 16, "the image's 16 rows are part of the prompt");
    assert.ok(r.context!.every((t) => t >= 0), "the context holds tokens only");
  });

  test("an undecodable image is a 400 with a reason; an unrelated request is served meanwhile", async () => {
    const bad = engine.chat(ask([Buffer.from("not an image at all").toString("base64")]));
    const good = engine.chat(ask([image(3)]));
    await assert.rejects(bad, (e: Error) => e instanceof BadRequestError && /image 1 cannot be decoded/.test(e.message));
    assert.equal((await good).done, true);
  });

  test("one undecodable file in two requests at once, as their first and their second image: each 400 names its own image", async () => {
    const broken = Buffer.from("still not an image").toString("base64");
    const [first, second] = await Promise.allSettled([engine.chat(ask([broken])), engine.chat(ask([image(4), broken]))]);
    assert.match(String(first.status === "rejected" && first.reason), /image 1 cannot be decoded/);
    assert.match(String(second.status === "rejected" && second.reason), /image 2 cannot be decoded/);
    const preparedBefore = engine.stats()[0]!.imagesPrepared;
    await assert.rejects(engine.chat(ask([broken])), /image 1 cannot be decoded/);
    assert.equal(engine.stats()[0]!.imagesPrepared - preparedBefore, 1, "a file that failed is read again, not remembered");
  });

  test("each format read (PNG, JPEG, WebP, GIF, BMP) gets an answer; TIFF, AVIF and SVG are 400s naming the format", async () => {
    for (const name of ["test.jpg", "lossy.webp", "lossless.webp", "test.gif", "test.bmp"] as const) {
      const r = await engine.chat(ask([imageFile(name).toString("base64")]));
      assert.ok(r.done && r.prompt_eval_count! > 16, `${name}: the image's 16 rows are part of the prompt`);
    }
    const avif = Buffer.concat([Buffer.from("\0\0\0\x1cftypavif", "latin1"), Buffer.alloc(32)]);
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>');
    for (const [format, bytes] of [["TIFF", imageFile("test.tiff")], ["AVIF", avif], ["SVG", svg]] as const) {
      await assert.rejects(engine.chat(ask([image(1), bytes.toString("base64")])), (e: Error) =>
        e instanceof BadRequestError && e.message === `image 2 is ${format}, which is not supported: send PNG, JPEG, WebP, GIF (its first frame) or BMP`);
    }
  });

  test("an image claiming more pixels than allowed is a 400 before it is decoded", async () => {
    // A GIF header for 25,120 x 29,813 pixels (stb_image would allocate 2.2 GB for it).
    const bomb = Buffer.from("GIF89a\x20\x62\x75\x74\x20\x6e\x6f\x74", "latin1").toString("base64");
    await assert.rejects(engine.chat(ask([bomb])), (e: Error) => e instanceof BadRequestError && /25120x29813 pixels, more than the limit/.test(e.message));
  });

  test("cancelled as soon as it is sent (its image not yet or being computed): rejected, and its cells are freed", async () => {
    const controller = new AbortController();
    const pending = engine.chat({ ...ask([image(40)]), stream: true }, { signal: controller.signal });
    setImmediate(() => controller.abort());
    await assert.rejects(async () => { for await (const _ of await pending) { /* until cancelled */ } }, CancelledError);
    const deadline = Date.now() + 5000;
    while (engine.stats()[0]!.running > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const [s] = engine.stats();
    assert.equal(s!.running, 0);
    assert.equal(s!.kv.usedCells, s!.kv.idleCells, "no sequence holds private cells: every used cell is an idle cached block's");
  });

  test("a text-only model given an image gets Ollama's error", async () => {
    const r = engine.chat({ model: storiesPath, stream: false, messages: [{ role: "user", content: "hi", images: [image(0)] }] });
    await assert.rejects(r, (e: Error) => e instanceof BadRequestError && e.message === `${storiesPath} does not support images`);
  });

  describe("over HTTP, each API's image shape", () => {
    const served = serveDuring(() => engine);
    const post = async (route: string, body: unknown) => {
      const r = await fetch(served.url + route, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: r.status, body: (await r.json()) as Record<string, any> };
    };
    const png = image(0);
    const openAIWithImageUrl = (imageUrl: string) => post("/v1/chat/completions", {
      model: MODEL, temperature: 0, max_tokens: 12,
      messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: imageUrl } }, { type: "text", text: VISION_REFERENCE_QUESTION }] }],
    });
    const shapes = {
      ollama: (data: string) => post("/api/chat", { ...ask([data], VISION_REFERENCE_QUESTION), stream: false }),
      openai: (data: string) => openAIWithImageUrl(`data:image/png;base64,${data}`),
      anthropic: (data: string) => post("/v1/messages", {
        model: MODEL, temperature: 0, max_tokens: 12,
        messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data } }, { type: "text", text: VISION_REFERENCE_QUESTION }] }],
      }),
    };
    const answer = { ollama: (b: any) => b.message.content, openai: (b: any) => b.choices[0].message.content, anthropic: (b: any) => b.content[0].text };

    for (const api of ["ollama", "openai", "anthropic"] as const) {
      test(`${api}: the reference answer; an undecodable image is a 400 while an unrelated request is served`, async () => {
        const ok = await shapes[api](png);
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        assert.equal(answer[api](ok.body), VISION_REFERENCE_ANSWER);
        const [bad, unrelated] = await Promise.all([shapes[api](Buffer.from("not an image").toString("base64")), shapes[api](image(9))]);
        assert.equal(bad.status, 400, JSON.stringify(bad.body));
        assert.match(JSON.stringify(bad.body), /image 1 cannot be decoded/);
        assert.equal(unrelated.status, 200);
      });
    }

    test("openai: an http image URL is fetched by the server and gets the reference answer", async () => {
      const images = await ImageServer.start({ "/image.png": testImage(0) });
      try {
        const ok = await openAIWithImageUrl(`${images.url}/image.png`);
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        assert.equal(answer.openai(ok.body), VISION_REFERENCE_ANSWER);
      } finally {
        await images.close();
      }
    });
  });

  test("pulled with a projector layer, from Ollama's registry and by an hf.co name: show lists the projector, images get the reference answer", async () => {
    const files = await tinyVisionModel();
    const registry = await TestRegistry.start();
    const pulled = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-vision-pull-")), gpu: "cpu" });
    try {
      const layers = [
        { mediaType: LAYER_MEDIA_TYPES.model, data: readFileSync(files.model) },
        { mediaType: LAYER_MEDIA_TYPES.projector, data: readFileSync(files.projector) },
      ];
      registry.publish("library/tiny-vision", "latest", layers);
      registry.publish("someone/tiny-vision-GGUF", "F32", layers);
      const fromOllama = `${registry.host}/library/tiny-vision:latest`;
      const statuses: string[] = [];
      for await (const event of pulled.pull({ model: fromOllama })) statuses.push(event.status);
      assert.equal(statuses.at(-1), "success");
      // hf.co serves Ollama's registry protocol; the base URL points its name at the test registry.
      const fromHuggingFace = "hf.co/someone/tiny-vision-GGUF:F32";
      await pull(pulled.store, fromHuggingFace, { baseUrl: registry.url }, () => {});

      for (const model of [fromOllama, fromHuggingFace]) {
        const shown = await pulled.show({ model });
        assert.ok(shown.capabilities?.includes("vision"), `${model}: ${String(shown.capabilities)}`);
        assert.equal(shown.projector_info?.["general.architecture"], "clip", model);
        const answer = await pulled.chat({ ...ask([image(0)], VISION_REFERENCE_QUESTION), model });
        assert.equal(answer.message.content, VISION_REFERENCE_ANSWER, model);
      }
    } finally {
      await pulled.close();
      await registry.close();
    }
  });

  test("closing the engine frees the projector with its model", async () => {
    const e = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-vision-close-")), gpu: "cpu" });
    await createVisionModel(e);
    const before = liveNativeObjects();
    await e.chat(ask([image(5)]));
    assert.equal(liveNativeObjects().projectors, before.projectors + 1);
    await e.close();
    assert.deepEqual(liveNativeObjects(), before);
  });
});

// The same tests on the pairs whose images take another path than tiny-vision's:
// - Qwen2-VL's and Qwen3-VL's shapes (M-RoPE): an image's rows share its start position and the
//   text after it advances by max(nx, ny), so cell positions part from token indices (kv-manager.ts,
//   media.ts positionAt). Qwen3-VL's rows are also three embeddings wide (its deepstack), which the
//   projector and the decode of embedding rows take from the model's input width.
// - LLaVA-1.6's and Idefics3's tiling: an image is 5 chunks (an overview, 2 x 2 tiles) that mtmd
//   gives one id; Idefics3's with marker text between them, each a step after the tile before.
// - Gemma 3's: an image's rows attend to each other both ways (decoded in calls of their own), and
//   the model's local layers see 16 positions back, which its prompts here reach past.
const MORE_PAIRS = [
  { preset: "tiny-vision-tiles", shape: "tiles", reference: VISION_TILES_REFERENCE_ANSWER },
  { preset: "tiny-vision-idefics3", shape: "tiles with text between", reference: VISION_IDEFICS3_REFERENCE_ANSWER },
  { preset: "tiny-vision-mrope", shape: "M-RoPE", reference: VISION_MROPE_REFERENCE_ANSWER },
  { preset: "tiny-vision-qwen3vl", shape: "M-RoPE, deepstack", reference: VISION_QWEN3VL_REFERENCE_ANSWER },
  { preset: "tiny-vision-gemma3", shape: "non-causal image rows, sliding window", reference: VISION_GEMMA3_REFERENCE_ANSWER },
] as const;

for (const { preset: PAIR, shape, reference: PAIR_REFERENCE_ANSWER } of MORE_PAIRS) describe(`engine with images, ${shape} (${PAIR})`, () => {
  let engine: Engine;
  const askPair = (images: string[], question = VISION_REFERENCE_QUESTION, options: Record<string, number> = greedy) =>
    ({ ...ask(images, question), model: PAIR, options });
  before(async () => {
    initBackend("cpu");
    engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), `vllama-${PAIR}-store-`)), gpu: "cpu" });
    await createVisionModel(engine, PAIR, PAIR);
    await createVisionModel(engine);
  });
  after(async () => engine?.close());
  const stats = () => engine.stats().find((s) => s.name.includes(PAIR))!;

  test("show reports vision", async () => {
    const shown = await engine.show({ model: PAIR });
    assert.ok(shown.capabilities?.includes("vision"), String(shown.capabilities));
  });

  test("parity with llama.cpp's llama-mtmd-cli, alone and with 15 other sequences (text and images, on both pairs) in the same steps", async () => {
    const reference = askPair([image(0)]);
    assert.equal((await engine.chat(reference)).message.content, PAIR_REFERENCE_ANSWER);
    const others = Array.from({ length: 15 }, (_, i) =>
      i % 3 === 0 ? askPair([], `Tell me about the number ${i}.`)
        : i % 5 === 0 ? ask([image(30 + i)], `Question ${i} about the picture?`)
          : askPair([image(10 + i)], `Question ${i} about the picture?`));
    const together = await Promise.all([engine.chat(reference), ...others.map((r) => engine.chat(r))]);
    assert.equal(together[0]!.message.content, PAIR_REFERENCE_ANSWER);
    // Each kind alone again (a text, this pair's images, a tiny-vision image): a request of Qwen2's
    // 151,936-token vocabulary takes seconds on 2 cores, all 15 would take a minute.
    for (const i of [0, 1, 5, 14]) {
      assert.equal(together[i + 1]!.message.content, (await engine.chat(others[i]!)).message.content, `sequence ${i + 1}`);
    }
  });

  // The question after the image is longer than a block, so the prompt's last whole block ends
  // after the image: the second request attaches to every whole block, the image's among them.
  test("the same image twice: the second request's rows come from the prefix cache, the answer is identical", async () => {
    const question = `Describe, in as many words as there are stars in the sky and then some more, what is in this picture ${"again ".repeat(12)}?`;
    const first = await engine.chat(askPair([image(7)], question));
    const hitsBefore = stats().kv.prefixHits;
    const encodedBefore = stats().imagesEncoded;
    const second = await engine.chat(askPair([image(7)], question));
    const hits = stats().kv.prefixHits - hitsBefore;
    assert.equal(second.message.content, first.message.content);
    assert.equal(stats().imagesEncoded, encodedBefore, "not encoded again");
    const prompt = first.prompt_eval_count!;
    // Every whole block: blocks are 16 tokens, or fewer where the image ends.
    assert.ok(hits >= prompt - 16 && hits < prompt, `${hits} of ${prompt} prompt tokens came from the cache`);
    // Another image after the same text: only the text's blocks are shared, its answer is the same every time.
    const other = await engine.chat(askPair([image(8)], question));
    assert.equal(other.message.content, (await engine.chat(askPair([image(8)], question))).message.content);
  });

  test("one image in 8 requests at once with distinct questions, beside a text request: each answer as alone", async () => {
    const [text, ...answers] = await Promise.all([
      engine.chat(askPair([], "Tell me a story.")),
      ...Array.from({ length: 8 }, (_, i) => engine.chat(askPair([image(60)], `Question ${i}: what is in this picture?`))),
    ]);
    assert.equal(text!.done, true);
    for (const i of [0, 7]) {
      assert.equal(answers[i]!.message.content, (await engine.chat(askPair([image(60)], `Question ${i}: what is in this picture?`))).message.content);
    }
  });

  test("two images and a follow-up turn: the answer does not change with what else runs", async () => {
    const turn = {
      ...askPair([]),
      messages: [
        { role: "user" as const, content: "Here is one.", images: [image(20)] },
        { role: "assistant" as const, content: "I see it." },
        { role: "user" as const, content: "And this one?", images: [image(21)] },
      ],
    };
    const alone = await engine.chat(turn);
    const [busy] = await Promise.all([engine.chat(turn), ...[22, 23, 24].map((seed) => engine.chat(askPair([image(seed)])))]);
    assert.equal(busy!.message.content, alone.message.content);
  });

  test("cancelled as soon as it is sent (its image not yet or being computed): rejected, and its cells are freed", async () => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const controller = new AbortController();
      const pending = engine.chat({ ...askPair([image(40 + attempt)]), stream: true }, { signal: controller.signal });
      setImmediate(() => controller.abort());
      await assert.rejects(async () => { for await (const _ of await pending) { /* until cancelled */ } }, CancelledError);
    }
    const deadline = Date.now() + 5000;
    while (stats().running > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(stats().running, 0);
    assert.equal(stats().kv.usedCells, stats().kv.idleCells, "no sequence holds private cells: every used cell is an idle cached block's");
    assert.equal((await engine.chat(askPair([image(0)]))).message.content, PAIR_REFERENCE_ANSWER, "the freed cells leave nothing behind");
  });

  describe("over HTTP", () => {
    const served = serveDuring(() => engine);
    const post = (route: string, body: unknown) =>
      fetch(served.url + route, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

    test("/api/chat and /v1/chat/completions (n = 3): the reference answer", async () => {
      const chat = await post("/api/chat", { ...askPair([image(0)]), stream: false });
      assert.equal(chat.status, 200);
      assert.equal(((await chat.json()) as any).message.content, PAIR_REFERENCE_ANSWER);
      // n = 3: the choices share the prompt's cells, the image's among them (one prompt group).
      const openai = await post("/v1/chat/completions", {
        model: PAIR, temperature: 0, max_tokens: 12, n: 3,
        messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: `data:image/png;base64,${image(0)}` } }, { type: "text", text: VISION_REFERENCE_QUESTION }] }],
      });
      assert.equal(openai.status, 200);
      const choices = ((await openai.json()) as any).choices.map((c: any) => c.message.content);
      assert.deepEqual(choices, Array(3).fill(PAIR_REFERENCE_ANSWER));
    });

    test("an unrelated request is served while an image request streams", async () => {
      const long = await post("/api/chat", { ...askPair([image(50)], VISION_REFERENCE_QUESTION, { temperature: 0, num_predict: 60 }), stream: true });
      assert.equal(long.status, 200);
      const reader = long.body!.getReader();
      await reader.read(); // its first piece: the image is in, it generates
      const unrelated = await post("/api/chat", { ...askPair([], "Hello?", { temperature: 0, num_predict: 2 }), stream: false });
      assert.equal(unrelated.status, 200);
      assert.equal(((await unrelated.json()) as any).done, true);
      assert.equal(stats().running, 1, "the image request still runs");
      let rest = "";
      for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
      assert.match(rest, /"done":true/);
    });
  });
});
