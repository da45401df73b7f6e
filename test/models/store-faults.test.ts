// Store faults (finding 9, docs/RELIABILITY.md): a damaged manifest is listed as damaged and can
// be deleted; a blob changed on disk is found by its digest (`show --verify`, and before a model is
// used when the blob's size, mtime or inode changed), loaded or not; a read-only store and a full
// disk answer clear errors without host paths. The
// read-only store and the full disk are real: a small tmpfs mounted for the test (needs root, as
// the project's machines run the suite).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { mkdir, open, readdir, readFile, rm, stat, truncate, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { InternalError, NotFoundError } from "../../src/api/errors.js";
import type { ProgressResponse } from "../../src/api/ollama.js";
import { ModelAdmin } from "../../src/models/admin.js";
import { Engine } from "../../src/engine/engine.js";
import { BLOB_MODE, DamagedModelError, ModelStore } from "../../src/models/store.js";
import { LAYER_MEDIA_TYPES } from "../../src/models/types.js";
import { storiesPath } from "../helpers/models.js";
import { TestRegistry } from "../helpers/registry.js";
import { tempDirs } from "../helpers/store.js";

const { tempDir } = tempDirs("store-faults");

/** Runs `work` on a tmpfs of `size` mounted at a new folder, unmounted after. */
async function onTmpfs(size: string, work: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  try {
    await work(dir);
  } finally {
    execFileSync("umount", [dir]);
  }
}

async function drain(progress: AsyncIterable<ProgressResponse>): Promise<ProgressResponse[]> {
  const seen: ProgressResponse[] = [];
  for await (const p of progress) seen.push(p);
  return seen;
}

/** The error, checked to carry no host path. */
async function failure(work: Promise<unknown>, dir: string): Promise<Error> {
  const error = await work.then(() => assert.fail("expected a failure"), (e: Error) => e);
  assert.ok(!error.message.includes(dir), error.message);
  return error;
}

describe("store faults (finding 9)", () => {
  test("a garbage manifest is listed as damaged, refused with a clear 500, and deletable", async () => {
    const dir = await tempDir();
    const admin = new ModelAdmin(new ModelStore(join(dir, "models")));
    await drain(admin.create({ model: "good", from: storiesPath }));
    const manifestDir = join(dir, "models", "manifests", "registry.ollama.ai", "library", "broken");
    await mkdir(manifestDir, { recursive: true });
    await writeFile(join(manifestDir, "latest"), "\u0000garbage{");
    const { models } = await admin.list();
    const broken = models.find((m) => m.name === "broken:latest");
    assert.equal(broken?.damaged, "its manifest is not valid JSON");
    assert.equal(models.find((m) => m.name === "good:latest")?.damaged, undefined);
    const shown = await failure(admin.show({ model: "broken" }), dir);
    assert.ok(shown instanceof InternalError);
    assert.equal(shown.message, "model 'broken:latest' is damaged: its manifest is not valid JSON; delete it and pull or create it again");
    await admin.delete({ model: "broken" });
    assert.deepEqual((await admin.list()).models.map((m) => m.name), ["good:latest"]);
    await assert.rejects(admin.delete({ model: "broken" }), NotFoundError);
  });

  test("a model whose config blob is gone is listed as damaged and deletable", async () => {
    const dir = await tempDir();
    const store = new ModelStore(join(dir, "models"));
    const admin = new ModelAdmin(store);
    await drain(admin.create({ model: "noconfig", from: storiesPath }));
    const manifest = (await store.readManifest("noconfig")).manifest;
    await rm(store.blobPath(manifest.config.digest));
    const [entry] = (await admin.list()).models;
    assert.equal(entry?.damaged, "its config blob is missing or not valid JSON");
    await admin.delete({ model: "noconfig" });
    assert.deepEqual((await admin.list()).models, []);
    assert.deepEqual(await readdir(join(dir, "models", "blobs")), [], "its other blobs went with it");
  });

  test("show --verify names a blob changed on disk; use checks the digest when size, mtime or inode changed", async () => {
    const dir = await tempDir();
    const store = new ModelStore(join(dir, "models"));
    const admin = new ModelAdmin(store);
    await drain(admin.create({ model: "kept", from: storiesPath }));
    const record = JSON.parse(await readFile(join(dir, "models", ".vllama-verified.json"), "utf8")) as Record<string, unknown>;
    const blob = (await store.resolve("kept")).modelPath;
    assert.ok(Object.keys(record).some((hex) => blob.endsWith(hex)), "create recorded the blob it hashed");

    // One byte changed, same size, its mtime put back: only a full check can see it. (A whole
    // second, which utimes can put back exactly; stat's mtime has nanoseconds.)
    const mtime = new Date(Math.floor((await stat(blob)).mtimeMs / 1000) * 1000);
    const atime = mtime;
    await utimes(blob, atime, mtime);
    await admin.show({ model: "kept", verify: true });
    const file = await open(blob, "r+");
    await file.write(Buffer.from([0x5a]), 0, 1, 1_000);
    await file.close();
    await utimes(blob, atime, mtime);
    const changed = /^model 'kept:latest' is damaged: its blob sha256-[0-9a-f]{12} does not match its digest \(changed on disk\); delete it and pull or create it again$/;
    await store.resolve("kept", "if-changed");
    const verified = await failure(admin.show({ model: "kept", verify: true }), dir);
    assert.ok(verified instanceof DamagedModelError && verified.status === 500);
    assert.match(verified.message, changed);
    // Its mtime moved: the next use hashes it, with no --verify.
    await utimes(blob, atime, new Date(mtime.getTime() + 1_000));
    assert.match((await failure(store.resolve("kept", "if-changed"), dir)).message, changed);

    // Another store object (a restart) without the record: an unrecorded blob is hashed before use.
    await rm(join(dir, "models", ".vllama-verified.json"));
    assert.match((await failure(new ModelStore(join(dir, "models")).resolve("kept", "if-changed"), dir)).message, changed);
  });

  test("a truncated blob, not loaded and loaded: a clear 500 before any read of its weights, the process keeps serving", async () => {
    const dir = await tempDir();
    const engine = new Engine({ modelsDir: join(dir, "models"), parallel: 2 });
    const generate = () => engine.generate({ model: "cut", prompt: "Once upon a time", options: { num_predict: 4, temperature: 0 } });
    const cut = async () => truncate((await engine.store.resolve("cut")).modelPath, 600_000);
    const truncated = /^model 'cut:latest' is damaged: its blob sha256-[0-9a-f]{12} has 600000 bytes, its manifest says 1185376 \(truncated or replaced\); delete it and pull or create it again$/;
    const createAgain = async () => {
      await engine.delete({ model: "cut" });
      await drain(engine.create({ model: "cut", from: storiesPath }));
    };
    try {
      await drain(engine.create({ model: "cut", from: storiesPath }));
      // Not loaded: refused before the loader sees it.
      await cut();
      assert.match((await failure(generate(), dir)).message, truncated);
      await createAgain();
      // Loaded (its weights mapped: the store is only this user's): the next request is refused
      // before a step reads the mapping, where reading would be SIGBUS.
      assert.equal((await generate()).done, true);
      await cut();
      assert.match((await failure(generate(), dir)).message, truncated);
      assert.match((await failure(engine.show({ model: "cut", verify: true }), dir)).message, truncated);
      await createAgain();
      assert.equal((await generate()).done, true);
    } finally {
      await engine.close();
    }
  });

  test("blobs are written read-only (created, uploaded and pulled), so only they are mapped", async () => {
    const dir = await tempDir();
    const store = new ModelStore(join(dir, "models"));
    const admin = new ModelAdmin(store);
    const registry = await TestRegistry.start();
    try {
      await drain(admin.create({ model: "made", from: storiesPath }));
      const data = Buffer.from("an uploaded blob");
      const uploaded = `sha256:${createHash("sha256").update(data).digest("hex")}`;
      await store.writeBlob(uploaded, Readable.from([data]));
      registry.publish("library/pulled", "latest", [{ mediaType: LAYER_MEDIA_TYPES.model, data: "a pulled layer" }]);
      await drain(admin.pull({ model: `${registry.host}/library/pulled` }));
      const blobs = await readdir(join(dir, "models", "blobs"));
      assert.ok(blobs.length >= 4, blobs.join());
      for (const blob of blobs) assert.equal((await stat(join(dir, "models", "blobs", blob))).mode & 0o777, BLOB_MODE, blob);
    } finally {
      await registry.close();
    }
  });

  test("a model file its owner can write is read, not mapped: truncated mid-generation, the generation ends and the process serves on", async () => {
    // Before 2026-12-02 a file only this user could write (0644, as Ollama writes its blobs) was
    // mapped, and truncating it while a request ran killed the process with SIGBUS.
    const dir = await tempDir();
    const file = join(dir, "own.gguf");
    await writeFile(file, await readFile(storiesPath), { mode: 0o644 });
    const engine = new Engine({ modelsDir: join(dir, "models"), parallel: 2 });
    const request = { model: file, prompt: "Once upon a time", options: { num_predict: 48, temperature: 0 } };
    try {
      const stream = await engine.generate({ ...request, stream: true });
      let chunks = 0;
      let done = false;
      for await (const chunk of stream) {
        if (chunks++ === 1) await truncate(file, 1000);
        done = chunk.done;
      }
      assert.ok(done && chunks > 2, `${chunks} chunks`);
      assert.equal((await engine.generate({ ...request, stream: false })).done, true);
    } finally {
      await engine.close();
    }
  });

  test("a read-only store: create, copy, delete and blob uploads get a clear 500 without host paths", async () => {
    await onTmpfs("4m", async (dir) => {
      const admin = new ModelAdmin(new ModelStore(join(dir, "models")));
      await drain(admin.create({ model: "kept", from: storiesPath }));
      execFileSync("mount", ["-o", "remount,ro", dir]);
      const readOnly = "the model store is not writable (EROFS)";
      assert.equal((await failure(drain(admin.create({ model: "new", from: storiesPath })), dir)).message, readOnly);
      assert.match((await failure(admin.copy({ source: "kept", destination: "copy" }), dir)).message, /^the model store is not writable /);
      assert.equal((await failure(admin.delete({ model: "kept" }), dir)).message, readOnly);
      const upload = admin.writeBlob(`sha256:${"0".repeat(64)}`, (async function* () { yield Buffer.from("x"); })() as unknown as NodeJS.ReadableStream);
      assert.equal((await failure(upload, dir)).message, readOnly);
      assert.equal((await admin.list()).models.length, 1, "reading still works");
    });
  });

  test("a full disk during create: a clear 500 without host paths, and no partial blob left", async () => {
    await onTmpfs("512k", async (dir) => {
      const admin = new ModelAdmin(new ModelStore(join(dir, "models")));
      const error = await failure(drain(admin.create({ model: "big", from: storiesPath })), dir);
      assert.equal(error.message, "no space left for the model store (ENOSPC)");
      assert.deepEqual(await readdir(join(dir, "models", "blobs")), []);
      assert.deepEqual((await admin.list()).models, []);
    });
  });

  test("a full disk during pull: a clear 500 without host paths, no partial or unverified blob left, the store still usable", async () => {
    const registry = await TestRegistry.start();
    try {
      registry.publish("library/big", "latest", [{ mediaType: LAYER_MEDIA_TYPES.model, data: await readFile(storiesPath) }]);
      registry.publish("library/small", "latest", [{ mediaType: LAYER_MEDIA_TYPES.model, data: "a small layer" }]);
      await onTmpfs("512k", async (dir) => {
        const admin = new ModelAdmin(new ModelStore(join(dir, "models")));
        const error = await failure(drain(admin.pull({ model: `${registry.host}/library/big` })), dir);
        assert.equal(error.message, "no space left for the model store (ENOSPC)");
        assert.deepEqual(await readdir(join(dir, "models", "blobs")), [], "no partial download keeps the disk full");
        assert.deepEqual((await admin.list()).models, []);
        await drain(admin.pull({ model: `${registry.host}/library/small` }));
        assert.deepEqual((await admin.list()).models.map((m) => m.name), [`${registry.host}/library/small:latest`]);
      });
    } finally {
      await registry.close();
    }
  });
});
