// Shared-serving hardening (docs/RELIABILITY.md): each finding reproduced against the real engine
// behind the real HTTP server, with the trained stories260K model.
import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { Engine } from "../src/engine/engine.js";
import { startServer, type RunningServer } from "../src/server/index.js";
import { repoRoot, storiesPath } from "./helpers/models.js";

/** `{"$ref": "#/$defs/d0"}` with d0 -> d1 -> ... -> d(n-1) -> a string. */
function refChain(n: number): object {
  const defs: Record<string, object> = {};
  for (let i = 0; i < n; i++) defs[`d${i}`] = i + 1 < n ? { $ref: `#/$defs/d${i + 1}` } : { type: "string" };
  return { $ref: "#/$defs/d0", $defs: defs };
}

async function post(url: string, body: unknown): Promise<{ status: number; body: any; ms: number }> {
  const started = performance.now();
  const res = await fetch(url, { method: "POST", body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text === "" ? undefined : JSON.parse(text), ms: performance.now() - started };
}

describe("reliability: JSON schemas (findings 1 and 2)", () => {
  let engine: Engine;
  let server: RunningServer;
  let url: string;
  const generate = (extra: object) => ({ model: storiesPath, prompt: "Once upon a time", stream: false, options: { num_predict: 4, temperature: 0 }, ...extra });

  before(async () => {
    engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-reliability-")), parallel: 4 });
    server = await startServer({ engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "10mb" }, logger: pino({ level: "silent" }) });
    url = `http://127.0.0.1:${server.port}`;
  });
  after(async () => {
    await server.close();
    await engine.close();
  });

  test("a format whose $ref chain is 10,000 long (358 KB) gets 400 and the server lives on", async () => {
    const body = generate({ format: refChain(10_000) });
    assert.ok(JSON.stringify(body).length > 300_000);
    const r = await post(`${url}/api/generate`, body);
    assert.equal(r.status, 400);
    assert.equal(r.body.error, "format is 327807 characters of JSON, more than the supported 65536");
    const shorter = await post(`${url}/api/generate`, generate({ format: refChain(1000) }));
    assert.equal(shorter.status, 400);
    assert.equal(shorter.body.error, 'format: a chain of "$ref"s is longer than the supported 32');
    assert.equal((await post(`${url}/api/generate`, generate({}))).status, 200);
  });

  test("the same through OpenAI's response_format and tools: 400 in OpenAI's error shape", async () => {
    const messages = [{ role: "user", content: "hi" }];
    const viaFormat = await post(`${url}/v1/chat/completions`, {
      model: storiesPath, messages, max_tokens: 2, response_format: { type: "json_schema", json_schema: { name: "x", schema: refChain(1000) } },
    });
    assert.equal(viaFormat.status, 400);
    assert.equal(viaFormat.body.error.type, "invalid_request_error");
    assert.match(viaFormat.body.error.message, /chain of "\$ref"s/);
    let deep: object = { type: "string" };
    for (let i = 0; i < 100; i++) deep = { type: "object", properties: { a: deep } };
    const viaTools = await post(`${url}/v1/chat/completions`, {
      model: storiesPath, messages, max_tokens: 2, tools: [{ type: "function", function: { name: "f", parameters: deep } }],
    });
    assert.equal(viaTools.status, 400);
    assert.match(viaTools.body.error.message, /^tools\[0\]\.function\.parameters is nested more than 64 levels deep$/);
  });

  test("mutually recursive $refs (left recursion) and minLength 1e9 get 400, not 500", async () => {
    const aliasCycle = { $ref: "#/$defs/a", $defs: { a: { $ref: "#/$defs/b" }, b: { $ref: "#/$defs/a" } } };
    const throughAnyOf = { $ref: "#/$defs/a", $defs: { a: { anyOf: [{ $ref: "#/$defs/b" }, { type: "string" }] }, b: { $ref: "#/$defs/a" } } };
    for (const format of [aliasCycle, throughAnyOf, { type: "string", minLength: 1e9 }]) {
      const r = await post(`${url}/api/generate`, generate({ format }));
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error, /left recursion|minLength/);
    }
  });

  test("a 1,000-value enum gets a clear 400; 256 values are served", async () => {
    const values = (n: number) => Array.from({ length: n }, (_, i) => `value ${i}`);
    const refused = await post(`${url}/api/generate`, generate({ format: { enum: values(1000) } }));
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error, 'format: "enum" has 1000 alternatives, more than the supported 256');
    const served = await post(`${url}/api/generate`, generate({ format: { enum: values(256) }, options: { num_predict: 12, temperature: 0 } }));
    assert.equal(served.status, 200);
    assert.match(served.body.response, /^"value \d*/);
  });
});

describe("reliability: KV cache usage at rest (finding 11)", () => {
  test("idle cached prefixes are reported as reclaimable, not in use", async () => {
    const engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-kv-")), parallel: 2 });
    try {
      // 40 prompt tokens: two full blocks of 16 stay cached after the request.
      const prompt = "Once upon a time there was a little girl named Lily. She loved to play outside in the park with her friends every day.";
      await engine.generate({ model: storiesPath, prompt, options: { num_predict: 4, temperature: 0 } });
      const metrics = engine.metrics();
      const value = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "m").exec(metrics)?.[1]);
      assert.equal(value("vllm:kv_cache_usage_perc"), 0);
      assert.ok(value("vllama:kv_cache_reclaimable_perc") > 0, metrics);
    } finally {
      await engine.close();
    }
  });
});

describe("reliability: shutdown drains (finding 4) and warns about an open bind (finding 6)", () => {
  const MAIN = path.resolve(repoRoot, "src/cli/main.ts");
  const TSX = import.meta.resolve("tsx");

  /** `vllama serve` as users run it, on a free port of every interface, without a key; path models from models/ (finding 5). */
  async function serve(shutdownTimeout: string): Promise<{ child: ChildProcessWithoutNullStreams; url: string; stderr: () => string }> {
    const child = spawn(process.execPath, ["--import", TSX, MAIN, "serve", "--host", "0.0.0.0:0", "--shutdown-timeout", shutdownTimeout, "--allow-path", path.dirname(storiesPath)], {
      env: { ...process.env, VLLAMA_MODELS: mkdtempSync(path.join(os.tmpdir(), "vllama-drain-")), VLLAMA_LOG_LEVEL: "warn", VLLAMA_API_KEY: "",
        // stories260K was trained on 128 tokens, the default context: the streams must outlast the deadline.
        VLLAMA_CONTEXT_LENGTH: "65536", VLLAMA_KV_CELLS: "65536" },
    });
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const port = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
        const m = /Listening on http:\/\/[^:]+:(\d+)/.exec(stdout);
        if (m) resolve(m[1]!);
      });
      child.once("exit", (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
    });
    return { child, url: `http://127.0.0.1:${port}`, stderr: () => stderr };
  }

  /** Reads a streamed response to its end: every line (NDJSON) or event (SSE). */
  async function readAll(res: Response): Promise<string[]> {
    const text = await res.text();
    return text.split(/\n+/).filter((line) => line !== "");
  }

  test("SIGTERM: readiness fails and new requests get 503 at once, running streams finish or end with a final line by the deadline, exit 0", { timeout: 120_000 }, async () => {
    const { child, url, stderr } = await serve("3s");
    assert.match(stderr(), /without an API key/);
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const long = { model: storiesPath, prompt: "Once upon a time", options: { num_predict: 100_000, temperature: 0 } };
    const started = await Promise.all([
      ...Array.from({ length: 4 }, () => fetch(`${url}/api/generate`, { method: "POST", body: JSON.stringify(long) })),
      ...Array.from({ length: 2 }, () => fetch(`${url}/v1/completions`, { method: "POST", body: JSON.stringify({ model: storiesPath, prompt: "Once", max_tokens: 100_000, stream: true }) })),
      fetch(`${url}/api/generate`, { method: "POST", body: JSON.stringify({ ...long, options: { num_predict: 3, temperature: 0 } }) }),
    ]);
    assert.ok(started.every((r) => r.status === 200));
    const bodies = started.map(readAll);
    child.kill("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 300));
    const ready = await fetch(`${url}/ready`);
    assert.equal(ready.status, 503);
    assert.equal((await ready.json()).reason, "shutting down");
    const refused = await fetch(`${url}/api/generate`, { method: "POST", body: JSON.stringify(long) });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get("retry-after"), "1");
    assert.deepEqual(await refused.json(), { error: "server is shutting down" });

    const [ndjson, sse, short] = [(await Promise.all(bodies)).slice(0, 4), (await Promise.all(bodies)).slice(4, 6), (await Promise.all(bodies))[6]!];
    for (const lines of ndjson) {
      const last = JSON.parse(lines.at(-1)!);
      assert.deepEqual(last, { error: "server is shutting down: request ended at the shutdown deadline", done: true, done_reason: "shutdown" });
      assert.ok(lines.length > 2, "it streamed before the deadline");
    }
    for (const events of sse) {
      assert.equal(events.at(-1), "data: [DONE]");
      assert.match(events.at(-2)!, /^data: \{"error":\{"message":"server is shutting down: request ended at the shutdown deadline","type":"api_error"/);
    }
    assert.equal(JSON.parse(short.at(-1)!).done_reason, "length", "a request that could finish in time finished");
    assert.equal(await exited, 0);
  });

  test("a second signal exits at once", { timeout: 60_000 }, async () => {
    const { child, url } = await serve("60s");
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const stream = await fetch(`${url}/api/generate`, { method: "POST", body: JSON.stringify({ model: storiesPath, prompt: "Once", options: { num_predict: 100_000 } }) });
    void stream.text().catch(() => undefined);
    child.kill("SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 300));
    const second = performance.now();
    child.kill("SIGTERM");
    assert.equal(await exited, 1);
    assert.ok(performance.now() - second < 5_000);
  });
});
