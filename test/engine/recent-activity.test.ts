// The last minute of a model's work: rates, the per-second series and latency percentiles,
// on a fake clock.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { RecentActivity, WINDOW_SECONDS } from "../../src/engine/recent-activity.js";

function clock(startMs: number) {
  const c = { ms: startMs, now: () => c.ms };
  return c;
}

describe("RecentActivity", () => {
  test("rates cover the time since start until a full window, then the window", () => {
    const c = clock(1_000_000);
    const recent = new RecentActivity(c.now);
    recent.firstToken(10, 0.5);
    for (let i = 0; i < 9; i++) recent.nextToken(0.02);
    recent.requestFinished();
    c.ms += 2000;
    let f = recent.figures();
    assert.equal(f.windowSeconds, 2);
    assert.equal(f.generationTokensPerSecond, 5);
    assert.equal(f.promptTokensPerSecond, 5);
    assert.equal(f.requestsPerSecond, 0.5);
    c.ms += 120_000;
    f = recent.figures();
    assert.equal(f.windowSeconds, WINDOW_SECONDS);
    assert.equal(f.generationTokensPerSecond, 0, "a minute later the burst has left the window");
    assert.equal(f.ttftSeconds.count, 0);
    assert.deepEqual(f.ttftSeconds, { p50: 0, p95: 0, p99: 0, count: 0 });
  });

  test("the series holds each second's tokens, oldest first, the current second last", () => {
    const c = clock(5_000_000);
    const recent = new RecentActivity(c.now);
    recent.firstToken(1, 0.1);
    c.ms += 1000;
    recent.nextToken(0.01);
    recent.nextToken(0.01);
    c.ms += 3000;
    recent.nextToken(0.01);
    const { generationTokensSeries: series } = recent.figures();
    assert.equal(series.length, WINDOW_SECONDS);
    assert.deepEqual(series.slice(-5), [1, 2, 0, 0, 1]);
    assert.equal(series.reduce((a, b) => a + b), 4);
  });

  test("percentiles are within 5% of the exact ones", () => {
    const c = clock(0);
    const recent = new RecentActivity(c.now);
    const itl: number[] = [];
    for (let i = 1; i <= 1000; i++) {
      const seconds = 0.005 + (i % 97) * 0.0003 + (i % 10 === 0 ? 0.2 : 0);
      itl.push(seconds);
      recent.nextToken(seconds);
      if (i % 100 === 0) c.ms += 1000;
    }
    const sorted = itl.sort((a, b) => a - b);
    const exact = (q: number) => sorted[Math.ceil(q * sorted.length) - 1]!;
    const f = recent.figures().itlSeconds;
    assert.equal(f.count, 1000);
    for (const [q, value] of [[0.5, f.p50], [0.95, f.p95], [0.99, f.p99]] as const) {
      assert.ok(Math.abs(value / exact(q) - 1) < 0.05, `p${q * 100}: ${value} vs ${exact(q)}`);
    }
  });
});
