import assert from "node:assert/strict";
import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CancelledError, InternalError, NotFoundError } from "../../src/api/errors.js";
import { pull, push } from "../../src/models/registry.js";
import { ModelStore } from "../../src/models/store.js";
import { LAYER_MEDIA_TYPES, type Manifest } from "../../src/models/types.js";
import { TestRegistry } from "../helpers/registry.js";
import { storiesPath as GGUF_PATH } from "../helpers/models.js";
import { collectProgress, tempDirs } from "../helpers/store.js";


const { newStore } = tempDirs("pull");

const sizeOf = (path: string) => stat(path).then((s) => s.size, () => 0);

describe("pull", () => {
  let registry: TestRegistry;
  let store: ModelStore;
  let manifest: Manifest;
  let gguf: Buffer;
  let name: string;

  beforeEach(async () => {
    registry = await TestRegistry.start();
    store = await newStore();
    gguf = await readFile(GGUF_PATH);
    manifest = registry.publish("library/tiny", "latest", [
      { mediaType: LAYER_MEDIA_TYPES.model, data: gguf },
      { mediaType: LAYER_MEDIA_TYPES.system, data: "You write stories." },
    ]);
    name = `${registry.host}/library/tiny:latest`;
  });
  afterEach(() => registry.close());

  const modelLayer = () => manifest.layers[0]!;
  const blobRequests = (digest: string) => registry.requests.filter((r) => r.method === "GET" && r.path.endsWith(digest));

  test("pulls a model with Ollama's progress stream, following blob redirects", async () => {
    const { events, onProgress } = collectProgress();
    await pull(store, name, {}, onProgress);

    const statuses = events.map((e) => e.status);
    assert.equal(statuses[0], "pulling manifest");
    assert.deepEqual(statuses.slice(-3), ["verifying sha256 digest", "writing manifest", "success"]);
    const layer = modelLayer();
    const layerEvents = events.filter((e) => e.status === `pulling ${layer.digest.slice(7, 19)}`);
    assert.ok(layerEvents.length >= 2);
    assert.ok(layerEvents.every((e) => e.digest === layer.digest && e.total === layer.size));
    assert.equal(layerEvents.at(-1)!.completed, layer.size);
    assert.ok(registry.requests.some((r) => r.path === `/storage/${layer.digest}`), "redirect followed");

    const model = await store.resolve(name);
    assert.deepEqual(await readFile(model.modelPath), gguf);
    assert.equal(model.system, "You write stories.");
    assert.equal(model.name, name);
    const manifestFile = join(store.manifestsDir, registry.host, "library", "tiny", "latest");
    assert.deepEqual(await readFile(manifestFile), registry.manifests.get("library/tiny:latest"));
    assert.equal((await store.show(name)).model_info["general.architecture"], "llama");
    assert.ok(!(await readdir(store.blobsDir)).some((f) => f.includes("partial") || f.startsWith(".")));
  });

  test("skips blobs already in the store", async () => {
    await pull(store, name, {}, () => {});
    registry.requests.length = 0;
    const { events, onProgress } = collectProgress();
    await pull(store, name, {}, onProgress);
    assert.equal(blobRequests(modelLayer().digest).length, 0);
    const layerEvent = events.find((e) => e.digest === modelLayer().digest)!;
    assert.equal(layerEvent.completed, layerEvent.total);
  });

  test("resumes a blob with a Range request after the connection drops", async () => {
    registry.dropBlobOnce(modelLayer().digest, 300_000);
    await pull(store, name, {}, () => {});
    const ranges = registry.requests.filter((r) => r.path.endsWith(modelLayer().digest)).map((r) => r.range);
    // It resumes from what reached the disk: at most the 300,000 bytes sent before the drop.
    const resumedFrom = ranges.map((r) => /^bytes=(\d+)-$/.exec(r ?? "")?.[1]).filter((n) => n !== undefined).map(Number);
    assert.ok(resumedFrom.some((n) => n > 0 && n <= 300_000), `ranges seen: ${JSON.stringify(ranges)}`);
    assert.deepEqual(await readFile(store.blobPath(modelLayer().digest)), gguf);
  });

  test("keeps the partial file when cancelled and resumes from it on the next pull", async () => {
    const layer = modelLayer();
    registry.stallBlobOnce(layer.digest, 400_000);
    const controller = new AbortController();
    const stalled = registry.waitForStall();
    const pulling = pull(store, name, { signal: controller.signal }, () => {});
    await stalled;
    while ((await sizeOf(store.partialBlobPath(layer.digest))) < 400_000) await sleep(5);
    controller.abort();
    await assert.rejects(pulling, CancelledError);
    assert.equal(await sizeOf(store.partialBlobPath(layer.digest)), 400_000);
    await assert.rejects(store.resolve(name), NotFoundError, "no manifest for a half-pulled model");

    await pull(store, name, {}, () => {});
    assert.ok(registry.requests.some((r) => r.path.endsWith(layer.digest) && r.range === "bytes=400000-"));
    assert.deepEqual(await readFile(store.blobPath(layer.digest)), gguf);
    assert.equal(await sizeOf(store.partialBlobPath(layer.digest)), 0);
  });

  test("lets concurrent pulls of one model share the download", async () => {
    await Promise.all([pull(store, name, {}, () => {}), pull(store, name, {}, () => {})]);
    assert.equal(registry.requests.filter((r) => r.path === `/storage/${modelLayer().digest}`).length, 1);
    assert.deepEqual(await readFile(store.blobPath(modelLayer().digest)), gguf);
    assert.deepEqual((await store.list()).map((m) => m.name), [name]);
  });

  test("fails on a digest mismatch, removing the download and writing no manifest", async () => {
    const layer = modelLayer();
    registry.corruptBlob(layer.digest);
    const { events, onProgress } = collectProgress();
    await assert.rejects(pull(store, name, {}, onProgress), (e: unknown) => e instanceof InternalError && /digest mismatch/.test(e.message));
    assert.ok(events.some((e) => e.status === "verifying sha256 digest"));
    assert.equal(await store.hasBlob(layer.digest), false);
    assert.equal(await sizeOf(store.partialBlobPath(layer.digest)), 0);
    assert.deepEqual(await store.list(), []);
  });

  test("reports a missing model as Ollama does", async () => {
    await assert.rejects(
      pull(store, `${registry.host}/library/absent:latest`, {}, () => {}),
      (e: unknown) => e instanceof NotFoundError && e.message === "pull model manifest: file does not exist",
    );
  });

  test("names the network problem when the registry is unreachable", async () => {
    const port = Number(registry.host.split(":")[1]);
    await registry.close();
    registry = await TestRegistry.start(); // keeps afterEach's close() valid
    await assert.rejects(
      pull(store, `127.0.0.1:${port}/library/tiny:latest`, {}, () => {}),
      (e: unknown) => e instanceof InternalError && /pull model manifest .*ECONNREFUSED/.test(e.message),
    );
  });

  test("pulls default-host names from a baseUrl override", async () => {
    registry.publish("library/mirrored", "v1", [{ mediaType: LAYER_MEDIA_TYPES.model, data: "not really a model" }]);
    await pull(store, "mirrored:v1", { baseUrl: registry.url }, () => {});
    const [entry] = await store.list();
    assert.equal(entry!.name, "mirrored:v1");
    assert.ok(await readFile(join(store.manifestsDir, "registry.ollama.ai", "library", "mirrored", "v1")));
  });
});

describe("push", () => {
  let registry: TestRegistry;
  beforeEach(async () => {
    registry = await TestRegistry.start();
  });
  afterEach(() => registry.close());

  test("uploads blobs and the manifest, skips blobs the registry has, and pulls back identically", async () => {
    const store = await newStore();
    const name = `${registry.host}/me/tiny:v1`;
    await store.create({ model: name, from: GGUF_PATH, system: "pushed" });
    const local = await store.readManifest(name);

    const { events, onProgress } = collectProgress();
    await push(store, name, {}, onProgress);
    assert.equal(events[0]!.status, "retrieving manifest");
    assert.deepEqual(events.slice(-2).map((e) => e.status), ["pushing manifest", "success"]);
    const modelDigest = local.manifest.layers[0]!.digest;
    const pushEvents = events.filter((e) => e.digest === modelDigest);
    assert.equal(pushEvents.at(-1)!.completed, pushEvents.at(-1)!.total);
    assert.deepEqual(registry.manifests.get("me/tiny:v1"), local.bytes);
    assert.deepEqual(registry.blobs.get(modelDigest), await readFile(GGUF_PATH));
    assert.equal(registry.requests.filter((r) => r.method === "POST").length, 3); // model, system, config

    registry.requests.length = 0;
    await push(store, name, {}, () => {});
    assert.equal(registry.requests.filter((r) => r.method === "POST").length, 0, "present blobs are not uploaded again");

    const other = await newStore();
    await pull(other, name, {}, () => {});
    assert.equal((await other.readManifest(name)).digest, local.digest);
  });

  test("fails for a model that is not in the store", async () => {
    const store = await newStore();
    await assert.rejects(push(store, `${registry.host}/me/none:v1`, {}, () => {}), NotFoundError);
  });
});
