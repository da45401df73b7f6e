import assert from "node:assert/strict";
import { test } from "node:test";
import { ConcurrencyLimit } from "../../src/util/concurrency-limit.js";

test("at most `limit` jobs run at once, started in the order given; one that fails does not stop the next", async () => {
  const limit = new ConcurrencyLimit(2);
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const finished: number[] = [];
  const job = (n: number, ms: number, fail = false) => async () => {
    started.push(n);
    running++;
    most = Math.max(most, running);
    await new Promise((resolve) => setTimeout(resolve, ms));
    running--;
    finished.push(n);
    if (fail) throw new Error(`job ${n} failed`);
    return n;
  };
  const results = await Promise.allSettled([
    limit.run(job(0, 40)), limit.run(job(1, 5, true)), limit.run(job(2, 5)), limit.run(job(3, 5)), limit.run(job(4, 5)),
  ]);
  assert.equal(most, 2);
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
  assert.deepEqual(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message)), [0, "job 1 failed", 2, 3, 4]);
  assert.deepEqual(finished, [1, 2, 3, 4, 0], "a long job holds one place; the others go through the other");
});
