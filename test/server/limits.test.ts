// Shared-serving limits of the HTTP layer (docs/RELIABILITY.md): API keys, connection time and
// size limits, bodies that lie about themselves, 503s with Retry-After, the probes. Fake engine.
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, type AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import express from "express";
import { pino } from "pino";
import type { ApiKey } from "../../src/config.js";
import { keyMatcher } from "../../src/server/auth.js";
import { notes } from "../../src/server/context.js";
import { OFF_THREAD_BYTES } from "../../src/server/json-body.js";
import { startServer, type RunningServer, type ServerSettings } from "../../src/server/index.js";
import { writeStream } from "../../src/server/streams.js";
import { FakeEngine } from "../helpers/fake-engine.js";

interface Raw {
  /** Everything the server sent. */
  text: string;
  /** Milliseconds from connecting until the server closed the connection (or the wait ended). */
  closedAfterMs: number;
  closedByServer: boolean;
}

/** Sends raw bytes and waits up to `waitMs` for the server to close the connection. */
function raw(port: number, bytes: string, waitMs = 5_000): Promise<Raw> {
  return new Promise((resolve) => {
    const started = performance.now();
    let text = "";
    let closedByServer = false;
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes));
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => (text += d));
    socket.on("end", () => (closedByServer = true));
    socket.on("error", () => undefined);
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text, closedAfterMs: performance.now() - started, closedByServer });
    });
  });
}

function bodyOf(reply: Raw): unknown {
  return JSON.parse(reply.text.slice(reply.text.indexOf("\r\n\r\n") + 4));
}

async function serve(engine: FakeEngine, settings: Partial<ServerSettings> = {}, logger = pino({ level: "silent" })): Promise<RunningServer> {
  return startServer({ engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "64kb", ...settings }, logger });
}

describe("connection limits (finding 7)", () => {
  const engine = new FakeEngine();
  let server: RunningServer;
  before(async () => {
    server = await serve(engine, { headersTimeout: 500, bodyTimeout: 500, idleTimeout: 500 });
  });
  after(() => server.close());

  test("headers that never end: 408 and closed after the headers timeout", async () => {
    const r = await raw(server.port, "POST /api/generate HTTP/1.1\r\nHost: localhost\r\n");
    assert.match(r.text, /^HTTP\/1\.1 408 /);
    assert.ok(r.closedByServer && r.closedAfterMs < 3_000, `closed after ${r.closedAfterMs} ms`);
  });

  test("Content-Length: 100 then 10 bytes: 408 in Ollama's error shape after the body timeout, connection closed", async () => {
    const r = await raw(server.port, "POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789");
    assert.match(r.text, /^HTTP\/1\.1 408 /);
    assert.deepEqual(bodyOf(r), { error: "request body timed out: no data for 0.5s" });
    assert.ok(r.closedByServer && r.closedAfterMs < 3_000, `closed after ${r.closedAfterMs} ms`);
  });

  test("a declared Content-Length of 1e15 gets 413 from the headers alone (before the body timeout), unread", async () => {
    const r = await raw(server.port, "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000000000000\r\n\r\n{}");
    assert.match(r.text, /^HTTP\/1\.1 413 /);
    assert.match(r.text, /\r\nConnection: close\r\n/i);
    assert.deepEqual((bodyOf(r) as { error: { type: string } }).error.type, "invalid_request_error");
    assert.ok(r.closedByServer && r.closedAfterMs < 450, `closed after ${r.closedAfterMs} ms`);
  });

  test("an idle socket and a kept-alive one after its response are closed", async () => {
    const idle = await raw(server.port, "");
    assert.ok(idle.closedByServer && idle.closedAfterMs < 3_000, `idle closed after ${idle.closedAfterMs} ms`);
    const kept = await raw(server.port, "GET /api/version HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert.match(kept.text, /^HTTP\/1\.1 200 /);
    assert.ok(kept.closedByServer && kept.closedAfterMs < 3_000, `kept-alive closed after ${kept.closedAfterMs} ms`);
  });
});

describe("bodies that lie about themselves, 503s (findings 8 and 11)", () => {
  const engine = new FakeEngine();
  let server: RunningServer;
  before(async () => {
    server = await serve(engine);
  });
  after(() => server.close());
  const post = (path: string, body: string, headers = "") =>
    raw(server.port, `POST ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${headers}Content-Length: ${body.length}\r\n\r\n${body}`);

  test("Content-Encoding: gzip with a plain body is a 400 that says so, not a 500", async () => {
    const r = await post("/api/generate", '{"model":"fake-model"}', "Content-Encoding: gzip\r\n");
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.deepEqual(bodyOf(r), { error: "invalid request body: its Content-Encoding does not match it (incorrect header check)" });
  });

  test("a null body says what it got, not a JSON parser message", async () => {
    const r = await post("/api/generate", "null");
    assert.deepEqual(bodyOf(r), { error: "invalid JSON body: expected a JSON object, got null" });
  });

  test("a context token id past int32 is a 400, not wrapped", async () => {
    const r = await post("/api/generate", JSON.stringify({ model: "fake-model", context: [2147483648] }));
    assert.match(r.text, /^HTTP\/1\.1 400 /);
    assert.match((bodyOf(r) as { error: string }).error, /^invalid context\.0: /);
  });

  test("/api/version answers the Ollama API version, vllama's own beside it", async () => {
    const version = await (await fetch(`http://127.0.0.1:${server.port}/api/version`)).json();
    assert.deepEqual(version, { version: "0.12.11", vllama_version: "0.0.0-fake" });
  });

  test("503s carry Retry-After", async () => {
    engine.maxPending = 0;
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/api/generate`, { method: "POST", body: JSON.stringify({ model: "fake-model" }) });
      assert.equal(res.status, 503);
      assert.equal(res.headers.get("retry-after"), "1");
    } finally {
      engine.maxPending = Infinity;
    }
  });

  test("/health says alive with the backend, devices, host memory, models and version; /ready is ready", async () => {
    const health = await (await fetch(`http://127.0.0.1:${server.port}/health`)).json();
    assert.equal(health.status, "ok");
    assert.equal(health.version, "0.0.0-fake");
    assert.equal(health.backend, "cpu");
    assert.ok(health.host_memory.total > 0 && health.host_memory.free > 0);
    assert.ok(Array.isArray(health.models));
    const ready = await fetch(`http://127.0.0.1:${server.port}/ready`);
    assert.equal(ready.status, 200);
    assert.equal((await ready.json()).status, "ready");
  });
});

describe("prompt limits (finding 3)", () => {
  const engine = new FakeEngine();
  let server: RunningServer;
  before(async () => {
    server = await serve(engine, { bodyLimit: "10mb", maxMessages: 100, promptLimit: "64kb" });
  });
  after(() => server.close());
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { method: "POST", body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };
  const messages = (n: number, content = "word") => Array.from({ length: n }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content }));

  test("more messages than --max-messages: 400 in each API's shape before the engine sees the request", async () => {
    const before = engine.requests.length;
    const tooMany = "too many messages: 101, this server takes at most 100 in one request";
    assert.deepEqual(await post("/api/chat", { model: "fake-model", messages: messages(101) }), { status: 400, body: { error: tooMany } });
    const openai = await post("/v1/chat/completions", { model: "fake-model", messages: messages(101) });
    assert.equal(openai.status, 400);
    assert.equal(openai.body.error.message, tooMany);
    const responses = await post("/v1/responses", { model: "fake-model", input: messages(101) });
    assert.equal(responses.status, 400);
    const anthropic = await post("/v1/messages", { model: "fake-model", max_tokens: 4, messages: messages(101) });
    assert.equal(anthropic.status, 400);
    assert.equal(anthropic.body.error.message, tooMany);
    assert.equal(engine.requests.length, before);
    assert.equal((await post("/api/chat", { model: "fake-model", messages: messages(100), stream: false })).status, 200);
  });

  test("more text than --prompt-limit: 413 on every prompt-bearing route; an embedding batch's strings are not messages", async () => {
    const big = "x".repeat(40 * 1024);
    const before = engine.requests.length;
    for (const [path, body] of [
      ["/api/generate", { model: "fake-model", prompt: big + big }],
      ["/api/generate", { model: "fake-model", prompt: big, system: big }],
      ["/api/chat", { model: "fake-model", messages: messages(2, big) }],
      ["/api/embed", { model: "fake-model", input: [big, big] }],
      ["/api/tokenize", { model: "fake-model", content: big + big }],
      ["/v1/completions", { model: "fake-model", prompt: [big, big] }],
      ["/v1/chat/completions", { model: "fake-model", messages: [{ role: "user", content: [{ type: "text", text: big }, { type: "text", text: big }] }] }],
      ["/v1/messages", { model: "fake-model", max_tokens: 4, system: big, messages: messages(1, big) }],
    ] as const) {
      const r = await post(path, body);
      assert.equal(r.status, 413, path);
      assert.match(JSON.stringify(r.body), /prompt too large: \d+ bytes of text, this server takes at most 65536/, path);
    }
    assert.equal(engine.requests.length, before);
    const batch = await post("/api/embed", { model: "fake-embed", input: Array.from({ length: 500 }, () => "short") });
    assert.equal(batch.status, 200, JSON.stringify(batch.body));
  });

  test("a body nested deeper than the stack is measured without overflowing it", async () => {
    const deep = "[".repeat(200_000) + "]".repeat(200_000);
    const res = await fetch(`http://127.0.0.1:${server.port}/api/generate`, { method: "POST", body: `{"model":"fake-model","prompt":"hi","input":${deep}}` });
    assert.notEqual(res.status, 500);
  });
});

describe("bodies of 64 KiB and more are parsed and checked on a worker thread (findings 1-3)", () => {
  const engine = new FakeEngine();
  let server: RunningServer;
  before(async () => {
    server = await serve(engine, { bodyLimit: "10mb" });
  });
  after(() => server.close());
  const post = async (path: string, body: string) => {
    const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { method: "POST", body });
    return { status: res.status, text: await res.text() };
  };
  /** The same request small and padded past OFF_THREAD_BYTES (a long system prompt) get the same answer. */
  const bothSizes = async (path: string, body: Record<string, unknown>) => {
    const small = await post(path, JSON.stringify(body));
    const large = await post(path, JSON.stringify({ ...body, system: "x".repeat(OFF_THREAD_BYTES) }));
    assert.equal(large.status, small.status, path);
    assert.equal(large.text, small.text, path);
    return small;
  };
  const tooManyValues = { type: "string", enum: Array.from({ length: 300 }, (_, i) => `v${i}`) };
  const tool = { type: "function", function: { name: "f", parameters: tooManyValues } };

  test("a schema out of bounds is a 400 naming its field, wherever each API puts it", async () => {
    for (const [path, body, field] of [
      ["/api/generate", { model: "fake-model", prompt: "hi", format: tooManyValues }, "format"],
      ["/api/chat", { model: "fake-model", messages: [{ role: "user", content: "hi" }], tools: [tool] }, "tools[0].function.parameters"],
      ["/v1/chat/completions", { model: "fake-model", messages: [{ role: "user", content: "hi" }], response_format: { type: "json_schema", json_schema: { name: "x", schema: tooManyValues } } }, "response_format.json_schema.schema"],
      ["/v1/responses", { model: "fake-model", input: "hi", text: { format: { type: "json_schema", name: "x", schema: tooManyValues } } }, "text.format.schema"],
      ["/v1/responses", { model: "fake-model", input: "hi", tools: [{ type: "function", name: "f", parameters: tooManyValues }] }, "tools[0].parameters"],
      ["/v1/messages", { model: "fake-model", max_tokens: 4, messages: [{ role: "user", content: "hi" }], tools: [{ name: "f", input_schema: tooManyValues }] }, "tools[0].input_schema"],
      ["/v1/messages", { model: "fake-model", max_tokens: 4, messages: [{ role: "user", content: "hi" }], output_config: { format: { type: "json_schema", schema: tooManyValues } } }, "output_config.format.schema"],
    ] as const) {
      const r = await bothSizes(path, body);
      assert.equal(r.status, 400, path);
      assert.ok(r.text.includes(`${field}: \\"enum\\" has 300 alternatives, more than the supported 256`), `${path}: ${r.text}`);
    }
  });

  test("invalid JSON and a body that is not an object get the same 400 either way", async () => {
    const small = await post("/api/generate", '{"model": "fake-model", "prompt": "hi",');
    assert.equal(small.status, 400);
    assert.match(small.text, /^\{"error":"invalid JSON body: /);
    const large = await post("/api/generate", `{"model": "fake-model", "prompt": "${"x".repeat(OFF_THREAD_BYTES)}",`);
    assert.equal(large.status, 400);
    assert.match(large.text, /^\{"error":"invalid JSON body: /);
    const string = await post("/api/generate", JSON.stringify("x".repeat(OFF_THREAD_BYTES)));
    assert.deepEqual(JSON.parse(string.text), { error: "invalid JSON body: expected a JSON object, got string" });
  });

  test("a large body that passes is served as parsed", async () => {
    const prompt = "once upon a time ".repeat(OFF_THREAD_BYTES / 8);
    const before = engine.requests.length;
    const r = await post("/api/generate", JSON.stringify({ model: "fake-model", prompt, stream: false }));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(engine.requests.slice(before).map((r) => (r.request as { prompt?: string }).prompt), [prompt]);
  });
});

describe("API keys (finding 6)", () => {
  const engine = new FakeEngine();
  const keys: ApiKey[] = [{ name: "alice", key: "sk-alice-0123456789" }, { name: "ci", key: "sk-ci-9876543210" }];
  const lines: string[] = [];
  let open: RunningServer;
  let keyedMetrics: RunningServer;
  before(async () => {
    const sink = new Writable({ write: (chunk, _enc, done) => { lines.push(String(chunk)); done(); } });
    open = await serve(engine, { apiKeys: keys }, pino({ level: "info" }, sink));
    keyedMetrics = await serve(engine, { apiKeys: keys, metricsAuth: true });
  });
  after(async () => {
    await open.close();
    await keyedMetrics.close();
  });

  /** One route of each family, with a body where it takes one. */
  const ROUTES: Array<{ method: string; path: string; body?: object; openai?: boolean }> = [
    { method: "POST", path: "/api/generate", body: { model: "fake-model", stream: false } },
    { method: "POST", path: "/api/chat", body: { model: "fake-model", stream: false, messages: [{ role: "user", content: "hi" }] } },
    { method: "POST", path: "/api/embed", body: { model: "fake-embed", input: "a" } },
    { method: "GET", path: "/api/tags" },
    { method: "GET", path: "/api/version" },
    { method: "POST", path: "/api/show", body: { model: "fake-model" } },
    { method: "HEAD", path: `/api/blobs/sha256:${"0".repeat(64)}` },
    { method: "POST", path: "/v1/chat/completions", body: { model: "fake-model", messages: [{ role: "user", content: "hi" }] }, openai: true },
    { method: "POST", path: "/v1/completions", body: { model: "fake-model", prompt: "hi" }, openai: true },
    { method: "GET", path: "/v1/models", openai: true },
  ];
  const call = (server: RunningServer, route: { method: string; path: string; body?: object }, headers: Record<string, string>) =>
    fetch(`http://127.0.0.1:${server.port}${route.path}`, {
      method: route.method, headers, body: route.body === undefined ? undefined : JSON.stringify(route.body),
    });

  test("no key and a wrong key get 401 in each API's error shape; the right key, as Bearer or x-api-key, passes", async () => {
    for (const route of ROUTES) {
      const wrong: Array<Record<string, string>> = [{}, { Authorization: "Bearer sk-alice-0123456788" }, { "x-api-key": "sk-alice" }];
      for (const headers of wrong) {
        const res = await call(open, route, headers);
        assert.equal(res.status, 401, `${route.method} ${route.path} ${JSON.stringify(headers)}`);
        assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="vllama"');
        if (route.method === "HEAD") continue;
        const body = await res.json();
        const message = route.openai ? body.error.message : body.error;
        assert.match(message, /^(missing|invalid) API key: send it as "Authorization: Bearer <key>" or "x-api-key: <key>"$/);
        if (route.openai) assert.equal(body.error.type, "invalid_request_error");
      }
      const right: Array<Record<string, string>> = [{ Authorization: "Bearer sk-alice-0123456789" }, { "x-api-key": "sk-ci-9876543210" }];
      for (const headers of right) {
        const res = await call(open, route, headers);
        assert.notEqual(res.status, 401, `${route.method} ${route.path} with a right key`);
        await res.arrayBuffer();
      }
    }
  });

  test("the probes stay open; /metrics is open or keyed as configured", async () => {
    for (const path of ["/health", "/ready", "/"]) assert.equal((await fetch(`http://127.0.0.1:${open.port}${path}`)).status, 200, path);
    assert.equal((await fetch(`http://127.0.0.1:${open.port}/metrics`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${keyedMetrics.port}/metrics`)).status, 401);
    const keyed = await fetch(`http://127.0.0.1:${keyedMetrics.port}/metrics`, { headers: { Authorization: "Bearer sk-ci-9876543210" } });
    assert.equal(keyed.status, 200);
  });

  test("the access log names the key, never shows it", async () => {
    await (await call(open, ROUTES[3]!, { Authorization: "Bearer sk-alice-0123456789" })).arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(lines.some((line) => JSON.parse(line).key === "alice"));
    assert.ok(lines.every((line) => !line.includes("sk-alice") && !line.includes("sk-ci")));
  });

  test("a wrong key's comparison takes as long whether it shares a long prefix with a key or none", () => {
    // A 64 KiB key makes a prefix-dependent comparison (===, Buffer.compare) visible: microseconds.
    const key = "k".repeat(65_536);
    const match = keyMatcher([{ name: "big", key }]);
    const sharesAll = `${key.slice(0, -1)}x`;
    const sharesNone = `x${key.slice(1)}`;
    const time = (candidate: string) => {
      const started = process.hrtime.bigint();
      for (let i = 0; i < 20; i++) assert.equal(match(candidate), undefined);
      return Number(process.hrtime.bigint() - started);
    };
    const ratios: number[] = [];
    for (let round = 0; round < 41; round++) ratios.push(time(sharesAll) / time(sharesNone));
    ratios.sort((a, b) => a - b);
    const median = ratios[20]!;
    assert.ok(median > 0.8 && median < 1.25, `median time ratio ${median.toFixed(3)}`);
    assert.equal(match(key)?.name, "big");
  });
});

describe("a client that stops reading (finding 7)", () => {
  test("is cut off after the write timeout and the producer is released (the engine call is cancelled then)", { timeout: 30_000 }, async () => {
    let released = false;
    let produced = 0;
    async function* endless(): AsyncGenerator<object> {
      try {
        for (;;) {
          produced++;
          yield { response: "x".repeat(64 * 1024), done: false };
        }
      } finally {
        released = true;
      }
    }
    const app = express();
    const closed = new Promise<number>((resolve) => {
      app.get("/", (_req, res) => {
        notes(res).writeTimeout = 300;
        const started = performance.now();
        res.once("close", () => resolve(performance.now() - started));
        void writeStream(res, "ndjson", endless());
      });
    });
    const server = app.listen(0, "127.0.0.1");
    await once(server, "listening");
    const socket = connect((server.address() as AddressInfo).port, "127.0.0.1", () => {
      socket.write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
      socket.pause(); // never reads
    });
    socket.on("error", () => undefined);
    try {
      const closedAfterMs = await closed;
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok(released, "the stream's producer was released");
      assert.ok(closedAfterMs < 10_000, `response closed after ${closedAfterMs} ms`);
      assert.ok(produced < 1_000, `stopped producing after ${produced} items`);
    } finally {
      socket.destroy();
      server.close();
    }
  });
});
