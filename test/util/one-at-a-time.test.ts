import assert from "node:assert/strict";
import { test } from "node:test";
import { OneAtATime } from "../../src/util/one-at-a-time.js";

test("jobs run one at a time in the order given, and one that fails does not stop the next", async () => {
  const queue = new OneAtATime();
  let running = 0;
  let most = 0;
  const order: number[] = [];
  const job = (n: number, fail = false) => async () => {
    running++;
    most = Math.max(most, running);
    await new Promise((resolve) => setTimeout(resolve, 5 - n));
    order.push(n);
    running--;
    if (fail) throw new Error(`job ${n} failed`);
    return n;
  };
  const results = await Promise.allSettled([queue.run(job(0)), queue.run(job(1, true)), queue.run(job(2)), queue.run(job(3))]);
  assert.equal(most, 1);
  assert.deepEqual(order, [0, 1, 2, 3]);
  assert.deepEqual(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message)), [0, "job 1 failed", 2, 3]);
});
