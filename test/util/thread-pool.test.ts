import assert from "node:assert/strict";
import { test } from "node:test";
import { ThreadPool, workerScript } from "../../src/util/thread-pool.js";

const script = workerScript(new URL("../helpers/thread-id-worker.ts", import.meta.url).href, "thread-id-worker");

test("a pool starts all its threads with its first job, so none starts in the middle of a burst", async () => {
  const pool = new ThreadPool(script, 2);
  try {
    assert.equal(pool.started, 0, "nothing before a job");
    const first = await pool.run(null);
    assert.equal(pool.started, 2);
    const burst = await Promise.all([pool.run(null), pool.run(null)]);
    assert.equal(new Set(burst).size, 2, "two jobs at once run on both threads");
    assert.ok(burst.includes(first));
    assert.equal(pool.started, 2);
  } finally {
    await pool.close();
  }
});
