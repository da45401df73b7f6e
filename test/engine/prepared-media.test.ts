// The prepared media cache: a file decoded once per content while kept, a preparation in flight
// shared, a failed one not kept and not passed on to the calls that waited for it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PreparedMediaCache } from "../../src/engine/prepared-media.js";
import type { PreparedMedia } from "../../src/native/index.js";

/** A preparer that records its calls; a file whose first byte is 0 cannot be decoded. */
function countingPreparer() {
  const calls: string[] = [];
  const prepareFile = async (file: Uint8Array, name: string): Promise<PreparedMedia> => {
    calls.push(name);
    await new Promise((r) => setImmediate(r));
    if (file[0] === 0) throw new Error(`${name} cannot be decoded`);
    const chunk = { type: "image" as const, id: String(file[0]), nTokens: 4, nPos: 4, nonCausal: false, positions: () => new Int32Array(4) };
    return { id: chunk.id, width: 8, height: 8, audio: false, chunks: [chunk] };
  };
  return { calls, prepareFile };
}

test("the same bytes twice, and twice at once: prepared once, the same chunks; other bytes are prepared", async () => {
  const { calls, prepareFile } = countingPreparer();
  const cache = new PreparedMediaCache(prepareFile, 100);
  const [a, b] = await Promise.all([cache.prepared(Uint8Array.of(1, 2), "image 1"), cache.prepared(Uint8Array.of(1, 2), "image 2")]);
  const c = await cache.prepared(Uint8Array.of(1, 2), "image 1");
  assert.equal(a, b);
  assert.equal(a, c);
  await cache.prepared(Uint8Array.of(1, 3), "image 1");
  assert.deepEqual(calls, ["image 1", "image 1"]);
});

test("a failed preparation is not kept: those that waited for it prepare their own file, and their errors name it", async () => {
  const { calls, prepareFile } = countingPreparer();
  const cache = new PreparedMediaCache(prepareFile, 100);
  const broken = Uint8Array.of(0, 1);
  const [first, second] = await Promise.allSettled([cache.prepared(broken, "image 1"), cache.prepared(broken, "image 2")]);
  assert.match(String(first.status === "rejected" && first.reason), /image 1 cannot be decoded/);
  assert.match(String(second.status === "rejected" && second.reason), /image 2 cannot be decoded/);
  await assert.rejects(cache.prepared(broken, "image 1"), /image 1 cannot be decoded/);
  assert.deepEqual(calls, ["image 1", "image 2", "image 1"]);
});

test("past the row budget the least recently used file goes", async () => {
  const { calls, prepareFile } = countingPreparer();
  const cache = new PreparedMediaCache(prepareFile, 8);
  for (const first of [1, 2, 3, 1]) await cache.prepared(Uint8Array.of(first), `file ${first}`); // 3 pushes 1 out (4 + 4 + 4 > 8)
  assert.deepEqual(calls, ["file 1", "file 2", "file 3", "file 1"]);
});
