import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { before, describe, test } from "node:test";
import { BadRequestError, NotFoundError, NotImplementedError, VllamaError } from "../../src/api/errors.js";
import { parseModelfile, renderModelfile, type Modelfile } from "../../src/models/modelfile.js";
import { displayName, nameKey, normalizeModelName, parseModelName } from "../../src/models/names.js";
import { defaultModelsDir, ModelStore } from "../../src/models/store.js";
import { storiesPath as GGUF_PATH } from "../helpers/models.js";
import { tinyVisionModel } from "../helpers/images.js";
import { collectProgress, tempDirs } from "../helpers/store.js";

const GGUF_DIGEST = "sha256:047bf46455a544931cff6fef14d7910154c56afbc23ab1c5e56a72e69912c04b";
const GGUF_SIZE = 1_185_376;

const { tempDir, newStore } = tempDirs("store");

const sha256 = (data: string | Buffer) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

describe("model names", () => {
  test("fills in Ollama's defaults and prints the shortest form", () => {
    assert.deepEqual(parseModelName("llama3.2"), { host: "registry.ollama.ai", namespace: "library", model: "llama3.2", tag: "latest" });
    assert.equal(normalizeModelName("llama3.2"), "llama3.2:latest");
    assert.equal(normalizeModelName("registry.ollama.ai/library/qwen2.5:0.5b"), "qwen2.5:0.5b");
    assert.equal(normalizeModelName("user/model:v1"), "user/model:v1");
    assert.equal(normalizeModelName("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"), "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M");
    assert.equal(normalizeModelName("hf.co/u/r"), "hf.co/u/r:latest");
  });

  test("keeps a host's port out of the tag", () => {
    assert.deepEqual(parseModelName("127.0.0.1:5000/library/tiny"), { host: "127.0.0.1:5000", namespace: "library", model: "tiny", tag: "latest" });
    assert.equal(displayName(parseModelName("127.0.0.1:5000/library/tiny:v2")), "127.0.0.1:5000/library/tiny:v2");
  });

  test("compares case-insensitively but keeps the spelling", () => {
    assert.equal(nameKey(parseModelName("Llama3:Latest")), nameKey(parseModelName("llama3")));
    assert.equal(parseModelName("Llama3:Latest").model, "Llama3");
  });

  test("names the bad part in validation errors", () => {
    const cases: Array<[string, RegExp]> = [
      ["", /name is empty/],
      ["a/b/c/d", /expected \[host\/\]\[namespace\/\]model\[:tag\]/],
      ["my.ns/model", /namespace 'my.ns'/],
      ["model:bad/tag:x", /namespace 'model:bad'/],
      ["-model", /model '-model' must start/],
      ["model:t@g", /digests/],
      ["model:ta g", /tag 'ta g'/],
      ["library/", /model is empty/],
    ];
    for (const [input, message] of cases) {
      assert.throws(() => parseModelName(input), (e: unknown) => e instanceof BadRequestError && message.test(e.message), input);
    }
  });
});

describe("defaultModelsDir", () => {
  test("prefers VLLAMA_MODELS, then OLLAMA_MODELS, then ~/.ollama/models", () => {
    assert.equal(defaultModelsDir({ VLLAMA_MODELS: "/a", OLLAMA_MODELS: "/b" }), "/a");
    assert.equal(defaultModelsDir({ OLLAMA_MODELS: "/b" }), "/b");
    assert.match(defaultModelsDir({}), /\.ollama[/\\]models$/);
  });
});

describe("Modelfile", () => {
  const text = `# a comment
FROM ./model.gguf
template """{{ if .System }}<|system|>{{ .System }}{{ end }}
{{ .Prompt }}"""
SYSTEM You are a storyteller.
PARAMETER stop "<|end|>"
PARAMETER stop <|user|>
PARAMETER temperature 0.5
PARAMETER num_ctx 256
PARAMETER use_mmap false
MESSAGE user "Tell me a story"
MESSAGE assistant """Once upon a time"""
LICENSE """MIT
License"""
`;

  test("parses every command with Ollama's typing", () => {
    assert.deepEqual(parseModelfile(text), {
      from: ["./model.gguf"],
      template: "{{ if .System }}<|system|>{{ .System }}{{ end }}\n{{ .Prompt }}",
      system: "You are a storyteller.",
      parameters: { stop: ["<|end|>", "<|user|>"], temperature: 0.5, num_ctx: 256, use_mmap: false },
      messages: [
        { role: "user", content: "Tell me a story" },
        { role: "assistant", content: "Once upon a time" },
      ],
      license: ["MIT\nLicense"],
    });
  });

  test("renders text that parses back to the same Modelfile", () => {
    const tricky: Modelfile = {
      from: ["/models/blobs/sha256-abc", "/models/blobs/sha256-def"],
      template: 'ends with a quote "',
      system: ' has """ inside\nand a \\ backslash',
      parameters: { stop: ["<|end|>", " spaced ", '"quoted"'], top_k: 20 },
      messages: [{ role: "user", content: "multi\nline" }],
      license: ["L1", "L2"],
    };
    assert.deepEqual(parseModelfile(renderModelfile(tricky)), tricky);
    assert.deepEqual(parseModelfile(renderModelfile(parseModelfile(text))), parseModelfile(text));
  });

  test("several FROM lines (a model and its projector) are kept in order", () => {
    assert.deepEqual(parseModelfile("FROM ./model.gguf\nfrom ./mmproj.gguf\nSYSTEM hi").from, ["./model.gguf", "./mmproj.gguf"]);
  });

  test("rejects bad input with a typed error naming the problem", () => {
    const cases: Array<[string, RegExp]> = [
      ["SYSTEM hi", /no FROM line/],
      ["FROM a\nBOGUS x", /line 2: unknown command 'BOGUS'/],
      ["FROM a\nPARAMETER top_k abc", /line 2: invalid value for parameter 'top_k': "abc" is not an integer/],
      ["FROM a\nPARAMETER temperature hot", /is not a number/],
      ["FROM a\nPARAMETER use_mmap maybe", /true or false/],
      ["FROM a\nPARAMETER made_up 1", /unknown parameter 'made_up'/],
      ["FROM a\nPARAMETER stop", /missing value/],
      ["FROM a\nMESSAGE robot hi", /MESSAGE role must be one of/],
      ['FROM a\nSYSTEM """never closed', /unterminated """/],
      ['FROM a\nSYSTEM "x" trailing', /unexpected text after the closing quote/],
      ["FROM", /missing value for FROM/],
    ];
    for (const [input, message] of cases) {
      assert.throws(() => parseModelfile(input), (e: unknown) => e instanceof BadRequestError && message.test(e.message), input);
    }
    assert.throws(() => parseModelfile("FROM a\nADAPTER ./lora.gguf"), NotImplementedError);
  });
});

/** Lays out a store by hand exactly as Ollama writes one. */
async function writeOllamaStore(dir: string): Promise<{ manifestBytes: Buffer; manifestPath: string }> {
  const blobs = join(dir, "blobs");
  await mkdir(blobs, { recursive: true });
  const blob = async (data: string) => {
    await writeFile(join(blobs, `sha256-${sha256(data).slice(7)}`), data);
    return { digest: sha256(data), size: Buffer.byteLength(data) };
  };
  await copyFile(GGUF_PATH, join(blobs, `sha256-${GGUF_DIGEST.slice(7)}`));
  const template = "{{- if .Tools }}tools: {{ .Tools }}{{ end }}{{ if .Suffix }}<PRE>{{ .Prompt }}<SUF>{{ .Suffix }}{{ end }}{{ .Prompt }}";
  const layers = [
    { mediaType: "application/vnd.ollama.image.model", digest: GGUF_DIGEST, size: GGUF_SIZE },
    { mediaType: "application/vnd.ollama.image.template", ...(await blob(template)) },
    { mediaType: "application/vnd.ollama.image.system", ...(await blob("You write tiny stories.")) },
    { mediaType: "application/vnd.ollama.image.params", ...(await blob('{"stop":["<|im_end|>"],"temperature":0.7}')) },
    { mediaType: "application/vnd.ollama.image.license", ...(await blob("MIT")) },
  ];
  const config = await blob(
    JSON.stringify({
      model_format: "gguf",
      model_family: "llama",
      model_families: ["llama"],
      model_type: "292.80K",
      file_type: "F32",
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    }),
  );
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: { mediaType: "application/vnd.docker.container.image.v1+json", ...config },
      layers,
    }),
  );
  const manifestPath = join(dir, "manifests", "registry.ollama.ai", "library", "stories", "latest");
  await mkdir(dirname(manifestPath), { recursive: true });
  await writeFile(manifestPath, manifestBytes);
  return { manifestBytes, manifestPath };
}

describe("a store laid out by Ollama", () => {
  let store: ModelStore;
  let manifestBytes: Buffer;

  before(async () => {
    const dir = join(await tempDir(), "models");
    ({ manifestBytes } = await writeOllamaStore(dir));
    store = new ModelStore(dir);
  });

  test("lists models as /api/tags does", async () => {
    const [entry, ...rest] = await store.list();
    assert.equal(rest.length, 0);
    assert.equal(entry!.name, "stories:latest");
    assert.equal(entry!.model, "stories:latest");
    assert.equal(entry!.digest, sha256(manifestBytes).slice(7));
    const manifest = JSON.parse(manifestBytes.toString()) as { config: { size: number }; layers: Array<{ size: number }> };
    assert.equal(entry!.size, manifest.config.size + manifest.layers.reduce((s, l) => s + l.size, 0));
    assert.deepEqual(entry!.details, {
      parent_model: "",
      format: "gguf",
      family: "llama",
      families: ["llama"],
      parameter_size: "292.80K",
      quantization_level: "F32",
    });
    assert.ok(!Number.isNaN(Date.parse(entry!.modified_at)));
  });

  test("resolves any spelling of the name", async () => {
    for (const name of ["stories", "Stories:LATEST", "registry.ollama.ai/library/stories:latest"]) {
      const model = await store.resolve(name);
      assert.equal(model.name, "stories:latest");
      assert.equal(model.modelPath, store.blobPath(GGUF_DIGEST));
      assert.equal(model.system, "You write tiny stories.");
      assert.deepEqual(model.parameters, { stop: ["<|im_end|>"], temperature: 0.7 });
      assert.equal(model.license, "MIT");
      assert.deepEqual(model.messages, []);
    }
    await assert.rejects(store.resolve("nope"), (e: unknown) => e instanceof NotFoundError && e.message === "model 'nope' not found");
  });

  test("shows the model as /api/show does", async () => {
    const show = await store.show("stories");
    assert.match(show.modelfile, new RegExp(`^FROM ${store.blobPath(GGUF_DIGEST)}$`, "m"));
    assert.match(show.modelfile, /^PARAMETER stop <\|im_end\|>$/m);
    assert.match(show.modelfile, /^SYSTEM """You write tiny stories\."""$/m);
    assert.equal(show.parameters, `${"stop".padEnd(30)} "<|im_end|>"\n${"temperature".padEnd(30)} 0.7`);
    assert.equal(show.system, "You write tiny stories.");
    assert.equal(show.license, "MIT");
    assert.deepEqual(show.capabilities, ["completion", "tools", "insert"]);
    assert.equal(show.model_info["general.architecture"], "llama");
    assert.equal(show.model_info["llama.context_length"], 128);
    assert.ok((show.model_info["general.parameter_count"] as number) > 200_000);
    assert.equal((show.model_info["tokenizer.ggml.tokens"] as string[]).length, 512);
    assert.equal(show.tensors, undefined);
    const verbose = await store.show("stories", true);
    assert.ok(verbose.tensors!.some((t) => t.name === "token_embd.weight" && t.shape.length === 2));
  });
});

describe("create, copy, delete", () => {
  test("creates a model from a GGUF path and reuses the blob the second time", async () => {
    const store = await newStore();
    const first = collectProgress();
    await store.create({ model: "tiny", from: GGUF_PATH }, first.onProgress);
    assert.deepEqual(
      first.events.map((e) => e.status),
      ["parsing GGUF", `creating new layer ${GGUF_DIGEST}`, "writing manifest", "success"],
    );
    const [entry] = await store.list();
    assert.equal(entry!.name, "tiny:latest");
    assert.equal(entry!.details.family, "llama");
    assert.equal(entry!.details.quantization_level, "F32");
    assert.match(entry!.details.parameter_size, /^\d+(\.\d+)?K$/);
    assert.equal((await stat(store.blobPath(GGUF_DIGEST))).size, GGUF_SIZE);
    assert.ok(await store.hasBlob(GGUF_DIGEST));

    const second = collectProgress();
    await store.create({ model: "tiny:v2", from: GGUF_PATH }, second.onProgress);
    assert.ok(second.events.some((e) => e.status === `using existing layer ${GGUF_DIGEST}`));
    // Only the model blob and one shared config blob: nothing stray (temp files) left behind.
    assert.equal((await readdir(store.blobsDir)).length, 2);
  });

  test("creates from a Modelfile on top of another model and on a relative GGUF path", async () => {
    const store = await newStore();
    const baseDir = await tempDir();
    await copyFile(GGUF_PATH, join(baseDir, "model.gguf"));
    await store.createFromModelfile("base", "FROM ./model.gguf\nPARAMETER temperature 0.2\n", baseDir);
    const modelfile = `FROM base
TEMPLATE """{{ .System }} {{ .Prompt }}"""
SYSTEM """Be brief."""
PARAMETER stop "<end>"
PARAMETER top_k 10
MESSAGE user Hi
MESSAGE assistant Hello!
LICENSE Apache-2.0
`;
    const { events, onProgress } = collectProgress();
    await store.createFromModelfile("storyteller", modelfile, baseDir, onProgress);
    assert.equal(events.at(-1)!.status, "success");

    const model = await store.resolve("storyteller");
    const base = await store.resolve("base");
    assert.equal(model.modelPath, base.modelPath);
    assert.equal(model.template, "{{ .System }} {{ .Prompt }}");
    assert.equal(model.system, "Be brief.");
    assert.deepEqual(model.parameters, { temperature: 0.2, stop: ["<end>"], top_k: 10 });
    assert.deepEqual(model.messages, [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello!" },
    ]);
    assert.equal(model.license, "Apache-2.0");
    assert.deepEqual(model.details, base.details);

    const shown = parseModelfile((await store.show("storyteller")).modelfile);
    assert.deepEqual(shown.from, [model.modelPath]);
    assert.deepEqual(
      { template: shown.template, system: shown.system, parameters: shown.parameters, messages: shown.messages, license: shown.license },
      { template: model.template, system: model.system, parameters: model.parameters, messages: model.messages, license: ["Apache-2.0"] },
    );
  });

  test("a vision model from a Modelfile of two FROM lines, or FROM a folder holding both: model and projector layers", async () => {
    const vision = await tinyVisionModel();
    const store = await newStore();
    const baseDir = await tempDir();
    await store.createFromModelfile("two-froms", `FROM ${vision.model}\nFROM ${vision.projector}\nSYSTEM Look closely.\n`, baseDir);
    await store.createFromModelfile("from-folder", `FROM ${vision.dir}\n`, baseDir);
    await store.create({ model: "api-folder", from: vision.dir });
    const digestOf = async (file: string) => `sha256:${createHash("sha256").update(await readFile(file)).digest("hex")}`;
    for (const name of ["two-froms", "from-folder", "api-folder"]) {
      const { manifest } = await store.readManifest(name);
      const layer = (mediaType: string) => manifest.layers.find((l) => l.mediaType === mediaType)?.digest;
      assert.equal(layer("application/vnd.ollama.image.model"), await digestOf(vision.model), name);
      assert.equal(layer("application/vnd.ollama.image.projector"), await digestOf(vision.projector), name);
      const shown = await store.show(name);
      assert.ok(shown.capabilities?.includes("vision"), `${name}: ${shown.capabilities}`);
      assert.equal(shown.projector_info?.["general.architecture"], "clip");
      assert.equal(shown.projector_info?.["clip.vision.image_size"], 32);
      const resolved = await store.resolve(name);
      assert.deepEqual(parseModelfile(shown.modelfile).from, [resolved.modelPath, resolved.projectorPath]);
    }
    assert.equal((await store.show("two-froms")).system, "Look closely.");
    await assert.rejects(store.createFromModelfile("bad", `FROM ${vision.projector}\nFROM ${vision.projector}\n`, baseDir), /files contain no model GGUF/);
    await assert.rejects(store.createFromModelfile("bad", `FROM ${vision.model}\nFROM llava\n`, baseDir), /FROM llava: with several FROM lines, each names a GGUF file or folder/);
    const empty = await tempDir();
    await assert.rejects(store.createFromModelfile("bad", `FROM ${empty}\n`, baseDir), /the folder holds no GGUF file/);
  });

  test("creates from an uploaded blob named in files", async () => {
    const store = await newStore();
    await store.writeBlob(GGUF_DIGEST, createReadStream(GGUF_PATH));
    await store.create({ model: "uploaded", files: { "model.gguf": GGUF_DIGEST }, system: "hi" });
    const model = await store.resolve("uploaded");
    assert.equal(model.modelPath, store.blobPath(GGUF_DIGEST));
    assert.equal(model.system, "hi");
  });

  test("rejects bad create requests before writing a manifest", async () => {
    const store = await newStore();
    await store.create({ model: "tiny", from: GGUF_PATH });
    const cases: Array<[Parameters<ModelStore["create"]>[0], abstract new (...args: never[]) => Error, RegExp]> = [
      [{ model: "q", from: "tiny", quantize: "Q4_K_M" }, NotImplementedError, /quantizing to Q4_K_M/],
      [{ model: "p", from: "tiny", parameters: { bogus: 1 } }, BadRequestError, /unknown parameter 'bogus'/],
      [{ model: "p", from: "tiny", parameters: { top_k: 1.5 } }, BadRequestError, /not an integer/],
      [{ model: "m", from: "tiny", messages: [{ role: "robot" as never, content: "x" }] }, BadRequestError, /messages\[0\]\.role/],
      [{ model: "n", from: "missing" }, NotFoundError, /model 'missing' not found/],
      [{ model: "n" }, BadRequestError, /neither 'from' nor 'files'/],
      [{ model: "n", from: "/no/such/file.gguf" }, VllamaError, /\/no\/such\/file\.gguf/],
      [{ model: "s", files: { "model.safetensors": GGUF_DIGEST } }, NotImplementedError, /only GGUF/],
      [{ model: "s", files: { "model.gguf": sha256("absent") } }, BadRequestError, /not found: upload it first/],
      [{ model: "bad name!", from: "tiny" }, BadRequestError, /invalid model name/],
    ];
    for (const [request, type, message] of cases) {
      await assert.rejects(store.create(request), (e: unknown) => e instanceof type && message.test((e as Error).message), request.model);
    }
    await store.create({ model: "same-quant", from: "tiny", quantize: "f32" });
    assert.deepEqual((await store.list()).map((m) => m.name).sort(), ["same-quant:latest", "tiny:latest"]);
  });

  test("verifies uploaded blobs and leaves nothing behind on a mismatch", async () => {
    const store = await newStore();
    await assert.rejects(store.writeBlob(sha256("expected"), Readable.from([Buffer.from("actual")])), BadRequestError);
    assert.deepEqual(await readdir(store.blobsDir), []);
    await assert.rejects(store.writeBlob("sha256:xyz", Readable.from([])), /invalid digest/);
    const ref = await store.writeBlob(sha256("expected"), Readable.from([Buffer.from("expected")]));
    assert.deepEqual(ref, { digest: sha256("expected"), size: 8, existed: false });
    assert.equal(await readFile(store.blobPath(ref.digest), "utf8"), "expected");
  });

  test("copies a model to a byte-identical manifest", async () => {
    const store = await newStore();
    await store.create({ model: "tiny", from: GGUF_PATH });
    await store.copy("tiny", "Tiny-Copy:v1");
    const [original, copy] = await Promise.all([store.readManifest("tiny"), store.readManifest("tiny-copy:V1")]);
    assert.deepEqual(copy.bytes, original.bytes);
    assert.equal(copy.name.model, "Tiny-Copy");
    await assert.rejects(store.copy("missing", "x"), NotFoundError);
    await assert.rejects(store.copy("tiny", "bad/na.me/x/y"), BadRequestError);
  });

  test("replaces a model whose name differs only in case, removing blobs only it used", async () => {
    const store = await newStore();
    await store.create({ model: "Tiny", from: GGUF_PATH, system: "first" });
    const firstSystem = (await store.readManifest("tiny")).manifest.layers[1]!.digest;
    await store.create({ model: "tiny", from: "TINY", system: "updated" });
    assert.deepEqual((await store.list()).map((m) => m.name), ["Tiny:latest"]);
    assert.equal((await store.resolve("tiny")).system, "updated");
    assert.equal(await store.hasBlob(firstSystem), false, "the replaced manifest's own blobs are removed");
    assert.equal(await store.hasBlob(GGUF_DIGEST), true);
  });

  test("deletes a model and the blobs no other model references", async () => {
    const store = await newStore();
    await store.create({ model: "a", from: GGUF_PATH, system: "A" });
    await store.create({ model: "user/b", from: "a", system: "B" });
    const systemA = (await store.readManifest("a")).manifest.layers.find((l) => l.mediaType.endsWith("system"))!.digest;

    await store.delete("A");
    assert.equal(await store.hasBlob(systemA), false);
    assert.equal(await store.hasBlob(GGUF_DIGEST), true);
    assert.deepEqual((await store.list()).map((m) => m.name), ["user/b:latest"]);
    await assert.rejects(store.delete("a"), (e: unknown) => e instanceof NotFoundError && e.message === "model 'a' not found");

    await store.delete("user/b");
    assert.deepEqual(await readdir(store.blobsDir), []);
    assert.deepEqual(await readdir(store.manifestsDir), []);
  });
});
