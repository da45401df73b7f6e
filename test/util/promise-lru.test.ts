// PromiseLru: values kept by key within a size budget counted as they resolve; least recently
// used first out, never the newest nor one in flight; rejected ones dropped.
import assert from "node:assert/strict";
import { test } from "node:test";
import { PromiseLru } from "../../src/util/promise-lru.js";

const settle = () => new Promise((r) => setImmediate(r));

test("sizes count once resolved: past the budget the least recently used resolved value goes, not one in flight", async () => {
  const lru = new PromiseLru<string>(10);
  const length = (v: string) => v.length;
  lru.set("a", Promise.resolve("aaaa"), length);
  lru.set("b", Promise.resolve("bbbb"), length);
  await settle();
  let finish!: (v: string) => void;
  lru.set("slow", new Promise((r) => (finish = r)), length);
  lru.get("a");
  lru.set("c", Promise.resolve("cccc"), length); // 12 > 10: b goes (a was used since), slow is in flight
  await settle();
  assert.equal(lru.get("b"), undefined);
  assert.ok(lru.get("a") && lru.get("c") && lru.get("slow"));
  finish("ssssssssssss"); // 12 alone: every other value goes, the newest stays
  await settle();
  assert.deepEqual(["a", "c", "slow"].map((k) => lru.get(k) !== undefined), [false, false, true]);
});

test("a value that rejects is dropped", async () => {
  const lru = new PromiseLru<string>(10);
  const failing = Promise.reject(new Error("no"));
  lru.set("x", failing, (v) => v.length);
  await assert.rejects(lru.get("x")!, /no/);
  await settle();
  assert.equal(lru.get("x"), undefined);
});
