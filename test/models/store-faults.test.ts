// Store faults (finding 9, docs/RELIABILITY.md): a damaged manifest is listed as damaged and can
// be deleted; a read-only store and a full disk answer clear errors without host paths. The
// read-only store and the full disk are real: a small tmpfs mounted for the test (needs root, as
// the project's machines run the suite).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { InternalError, NotFoundError } from "../../src/api/errors.js";
import type { ProgressResponse } from "../../src/api/ollama.js";
import { ModelAdmin } from "../../src/models/admin.js";
import { ModelStore } from "../../src/models/store.js";
import { storiesPath } from "../helpers/models.js";
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
});
