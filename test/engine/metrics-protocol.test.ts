// `/metrics` against the model-server protocol of the Kubernetes Gateway API Inference Extension
// (what its endpoint picker scrapes to route between replicas): read with a strict Prometheus text
// parser, each metric's type and labels checked, and the load signals followed as load comes and
// goes (queued requests show up, KV cache usage rises and falls back to 0).
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { Engine } from "../../src/engine/engine.js";
import { BLOCK_SIZE } from "../../src/engine/kv-manager.js";
import { startServer, type RunningServer } from "../../src/server/index.js";
import { OTHER_PROMPTS, storiesPath } from "../helpers/models.js";
import { parsePrometheusText, type Family } from "../helpers/prometheus-text.js";

const PARALLEL = 2;
const KV_CELLS = 4096;

describe("metrics: the Gateway API Inference Extension's model-server protocol", () => {
  let engine: Engine;
  let server: RunningServer;
  let url: string;

  before(async () => {
    engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-metrics-")), parallel: PARALLEL, kvCells: KV_CELLS });
    server = await startServer({ engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "1mb" }, logger: pino({ level: "silent" }) });
    url = `http://127.0.0.1:${server.port}`;
  });
  after(async () => {
    await server.close();
    await engine.close();
  });

  async function scrape(): Promise<Map<string, Family>> {
    const res = await fetch(`${url}/metrics`);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    return parsePrometheusText(await res.text());
  }
  const generate = (prompt: string, numPredict: number) =>
    fetch(`${url}/api/generate`, { method: "POST", body: JSON.stringify({ model: storiesPath, prompt, stream: false, options: { temperature: 0, num_predict: numPredict } }) }).then((r) => r.json());

  /** The one sample of a per-model family, checked to carry exactly `model_name` (plus `extra`). */
  function modelSample(families: Map<string, Family>, name: string, type: Family["type"], extra: string[] = []) {
    const family = families.get(name);
    assert.ok(family, `${name} missing`);
    assert.equal(family.type, type, `${name} type`);
    assert.equal(family.samples.length, 1, `${name}: one loaded model, one series`);
    const [sample] = family.samples;
    assert.deepEqual(Object.keys(sample.labels).sort(), ["model_name", ...extra].sort(), `${name} labels`);
    assert.equal(sample.labels.model_name, storiesPath);
    return sample;
  }
  const load = (families: Map<string, Family>) => ({
    waiting: modelSample(families, "vllm:num_requests_waiting", "gauge").value,
    running: modelSample(families, "vllm:num_requests_running", "gauge").value,
    kvUsage: modelSample(families, "vllm:kv_cache_usage_perc", "gauge").value,
  });

  test("before any model loads the families are declared and empty", async () => {
    const families = await scrape();
    for (const name of ["vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"]) {
      assert.equal(families.get(name)?.type, "gauge", name);
      assert.deepEqual(families.get(name)?.samples, [], name);
    }
  });

  test("types, labels and cache config of a loaded model", async () => {
    await generate(OTHER_PROMPTS[0], 2);
    const families = await scrape();
    assert.deepEqual(load(families), { waiting: 0, running: 0, kvUsage: 0 });
    const config = modelSample(families, "vllm:cache_config_info", "gauge", ["block_size", "num_gpu_blocks"]);
    assert.equal(config.value, 1);
    assert.equal(config.labels.block_size, String(BLOCK_SIZE));
    assert.equal(config.labels.num_gpu_blocks, String(KV_CELLS / BLOCK_SIZE));
    for (const name of ["vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:num_preemptions_total", "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"]) {
      assert.ok(modelSample(families, name, "counter").value >= 0, name);
    }
    assert.equal(modelSample(families, "vllm:generation_tokens_total", "counter").value, 2);
    const ttft = families.get("vllm:time_to_first_token_seconds")!;
    assert.equal(ttft.type, "histogram");
    assert.equal(ttft.samples.find((s) => s.name.endsWith("_count"))?.value, 1);
    const success = families.get("vllm:request_success_total")!;
    assert.equal(success.type, "counter");
    assert.deepEqual(success.samples.map((s) => [s.labels.finished_reason, s.value]), [["length", 1]]);
  });

  test("queued requests show up, KV usage rises with load and falls back to 0", async () => {
    const requests = OTHER_PROMPTS.slice(0, 2 * PARALLEL).map((p) => generate(p, 64));
    let settled = false;
    void Promise.all(requests).then(() => (settled = true));
    const seen = { waiting: 0, running: 0, kvUsage: 0 };
    while (!settled) {
      const now = load(await scrape());
      assert.ok(now.running <= PARALLEL, `running ${now.running}`);
      assert.ok(now.kvUsage >= 0 && now.kvUsage <= 1, `kv usage ${now.kvUsage}`);
      for (const k of ["waiting", "running", "kvUsage"] as const) seen[k] = Math.max(seen[k], now[k]);
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const r of await Promise.all(requests)) assert.equal(r.eval_count, 64);
    assert.ok(seen.waiting >= 1, `waiting peaked at ${seen.waiting}`);
    assert.equal(seen.running, PARALLEL);
    // Two sequences of ~70 tokens each in a 4,096-cell cache.
    assert.ok(seen.kvUsage >= 70 / KV_CELLS, `kv usage peaked at ${seen.kvUsage}`);
    // Their prefixes stay cached for reuse, but a router must see an idle replica.
    const after = await scrape();
    assert.deepEqual(load(after), { waiting: 0, running: 0, kvUsage: 0 });
    assert.ok(engine.stats()[0].kv.cachedBlocks > 0, "the finished prompts' blocks stay in the prefix cache");
  });
});
