// `GET /v1/metrics` against the real engine and stories260K: the JSON figures, their categories,
// the Prometheus form, bad queries and methods, with a generation served meanwhile.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import type { MetricsSnapshot } from "../../src/api/metrics.js";
import { Engine } from "../../src/engine/engine.js";
import { startServer, type RunningServer } from "../../src/server/index.js";
import { REFERENCE_PROMPT, REFERENCE_TEXT, storiesPath } from "../helpers/models.js";

const GREEDY = { num_predict: 48, temperature: 0 };

describe("GET /v1/metrics", () => {
  let engine: Engine;
  let server: RunningServer;
  let url: string;

  before(async () => {
    engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-metrics-")), parallel: 8, threads: 1 });
    server = await startServer({ engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "1mb" }, logger: pino({ level: "silent" }) });
    url = `http://127.0.0.1:${server.port}`;
  });
  after(async () => {
    await server.close();
    await engine.close();
  });

  const generate = (prompt = REFERENCE_PROMPT, stream = false) =>
    fetch(`${url}/api/generate`, { method: "POST", body: JSON.stringify({ model: storiesPath, prompt, stream, options: GREEDY }) });
  const metrics = async (query = "") => {
    const res = await fetch(`${url}/v1/metrics${query}`);
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as MetricsSnapshot;
  };

  test("no model loaded: memory only", async () => {
    const m = await metrics();
    assert.deepEqual(m.models, []);
    assert.ok(m.memory!.rss_bytes > 0);
    assert.ok(m.memory!.peak_rss_bytes >= m.memory!.rss_bytes);
    assert.ok(!Number.isNaN(Date.parse(m.time)));
  });

  test("after requests: tokens, rates, latency percentiles, KV cells and prefix hits of the model", async () => {
    for (let i = 0; i < 2; i++) assert.equal(((await (await generate()).json()) as { response: string }).response, REFERENCE_TEXT);
    const [model] = (await metrics()).models;
    assert.equal(model!.name, storiesPath);
    assert.ok(model!.window_seconds > 0 && model!.window_seconds <= 60);
    assert.deepEqual({ ...model!.requests, per_second: 0 }, { running: 0, waiting: 0, per_second: 0, finished: { length: 2 } });
    assert.ok(model!.requests!.per_second > 0);
    const tokens = model!.tokens!;
    assert.equal(tokens.generation_total, 96);
    assert.ok(tokens.prompt_total >= 2 * 4);
    assert.equal(tokens.generation_per_second_series.length, 60);
    assert.equal(tokens.generation_per_second_series.reduce((a, b) => a + b), 96);
    assert.ok(tokens.generation_per_second > 0 && tokens.prompt_per_second > 0);
    const { ttft_seconds: ttft, inter_token_seconds: itl } = model!.latency!;
    assert.equal(ttft.count, 2);
    assert.equal(itl.count, 94);
    for (const p of [ttft, itl]) assert.ok(p.p50 > 0 && p.p50 <= p.p95 && p.p95 <= p.p99);
    const cache = model!.cache!;
    assert.ok(cache.kv_cells_total > 0 && cache.kv_cells_used <= cache.kv_cells_total);
    assert.ok(cache.prefix_cache_queries > 0);
    assert.equal(cache.prefix_cache_hit_rate, cache.prefix_cache_hits / cache.prefix_cache_queries);
    assert.equal(cache.preemptions, 0);
    assert.ok(model!.memory!.model_bytes > 0);
  });

  test("?category= keeps the chosen groups", async () => {
    const m = await metrics("?category=cache,latency");
    assert.equal(m.memory, undefined);
    assert.deepEqual(Object.keys(m.models[0]!).sort(), ["cache", "latency", "name", "window_seconds"]);
    const memory = await metrics("?category=memory");
    assert.ok(memory.memory!.rss_bytes > 0);
    assert.deepEqual(Object.keys(memory.models[0]!).sort(), ["memory", "name", "window_seconds"]);
  });

  test("?format=prometheus is /metrics' text, by category too; HEAD answers", async () => {
    const all = await fetch(`${url}/v1/metrics?format=prometheus`);
    assert.match(all.headers.get("content-type")!, /^text\/plain/);
    const text = await all.text();
    assert.equal(text, await (await fetch(`${url}/metrics`)).text());
    const latency = await (await fetch(`${url}/v1/metrics?format=prometheus&category=latency`)).text();
    const families = [...latency.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]);
    assert.deepEqual(families, ["vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds", "vllm:e2e_request_latency_seconds"]);
    assert.ok(latency.includes(`vllm:time_to_first_token_seconds_count{model_name="${storiesPath}"} 2`));
    assert.equal((await fetch(`${url}/v1/metrics`, { method: "HEAD" })).status, 200);
  });

  test("bad queries get 400 and other methods 405, in OpenAI's error shape, while a generation streams on", async () => {
    const streaming = await generate(REFERENCE_PROMPT, true);
    const reader = streaming.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value);
    assert.equal((await metrics("?category=requests")).models[0]!.requests!.running, 1);

    const cases: Array<[string, string, number, RegExp]> = [
      ["GET", "?category=bogus", 400, /^invalid category: "bogus", expected a comma-separated list of requests, tokens, latency, cache, memory$/],
      ["GET", "?category=", 400, /^invalid category/],
      ["GET", "?category=cache&category=memory", 400, /^invalid category: expected string$/],
      ["GET", "?format=xml", 400, /^invalid format: expected one of "json", "prometheus"$/],
      ["GET", "?verbose=1", 400, /verbose/],
      ["POST", "", 405, /^POST \/v1\/metrics not allowed: use GET$/],
      ["DELETE", "", 405, /not allowed/],
    ];
    for (const [method, query, status, message] of cases) {
      const res = await fetch(`${url}/v1/metrics${query}`, { method });
      assert.equal(res.status, status, `${method} ${query}`);
      if (status === 405) assert.equal(res.headers.get("allow"), "GET, HEAD");
      const body = (await res.json()) as { error: { message: string; type: string } };
      assert.match(body.error.message, message);
      assert.equal(body.error.type, "invalid_request_error");
    }

    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value);
    const streamed = text.trim().split("\n").map((line) => (JSON.parse(line) as { response: string }).response).join("");
    assert.equal(streamed, REFERENCE_TEXT);
  });
});
