// Path models over HTTP (finding 5, docs/RELIABILITY.md): served only from the operator's
// directories, or with no list only on a loopback bind; anything else, whether it exists or not,
// is the same 404. Fake engine: a request the policy lets through reaches it.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import WebSocket from "ws";
import { startServer, type RunningServer, type ServerSettings } from "../../src/server/index.js";
import { FakeEngine } from "../helpers/fake-engine.js";
import { storiesPath } from "../helpers/models.js";

const root = mkdtempSync(path.join(os.tmpdir(), "vllama-path-models-"));
const allowed = path.join(root, "allowed");
const outside = path.join(root, "outside");
mkdirSync(allowed);
mkdirSync(outside);
copyFileSync(storiesPath, path.join(allowed, "stories.gguf"));
copyFileSync(storiesPath, path.join(outside, "secret.gguf"));
mkdirSync(path.join(allowed, "dir.gguf"));
writeFileSync(path.join(allowed, "text.gguf"), "not a model");
symlinkSync(path.join(outside, "secret.gguf"), path.join(allowed, "link.gguf"));
execFileSync("mkfifo", [path.join(allowed, "fifo.gguf")]);

async function serve(engine: FakeEngine, settings: Partial<ServerSettings>): Promise<RunningServer> {
  return startServer({ engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "1mb", ...settings }, logger: pino({ level: "silent" }) });
}

async function post(server: RunningServer, route: string, body: object): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${server.port}${route}`, { method: "POST", body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

const notFound = (model: string) => ({ status: 404, body: { error: `model '${model}' not found` } });

describe("path models under --allow-path", () => {
  const engine = new FakeEngine();
  let server: RunningServer;
  before(async () => {
    server = await serve(engine, { allowPaths: [allowed] });
  });
  after(() => server.close());

  test("a GGUF in a listed directory reaches the engine", async () => {
    const before = engine.requests.length;
    await post(server, "/api/generate", { model: path.join(allowed, "stories.gguf"), prompt: "hi", stream: false });
    assert.equal(engine.requests.length, before + 1);
  });

  test("outside it, through .., through a symlink, missing, a directory or a FIFO: the same 404, at once", async () => {
    const before = engine.requests.length;
    for (const model of [
      path.join(outside, "secret.gguf"), path.join(allowed, "..", "outside", "secret.gguf"), path.join(allowed, "link.gguf"),
      path.join(allowed, "missing.gguf"), path.join(allowed, "dir.gguf"), path.join(allowed, "fifo.gguf"), "/etc/passwd", "../../etc/hostname",
    ]) {
      const started = performance.now();
      assert.deepEqual(await post(server, "/api/generate", { model, prompt: "hi", stream: false }), notFound(model));
      assert.ok(performance.now() - started < 2_000, model);
    }
    assert.equal(engine.requests.length, before);
  });

  test("every route that names a model: chat, embed, show, OpenAI, Anthropic, create's from, the WebSocket", async () => {
    const secret = path.join(outside, "secret.gguf");
    assert.deepEqual(await post(server, "/api/chat", { model: secret, messages: [{ role: "user", content: "hi" }] }), notFound(secret));
    assert.deepEqual(await post(server, "/api/embed", { model: secret, input: "hi" }), notFound(secret));
    assert.deepEqual(await post(server, "/api/show", { model: secret }), notFound(secret));
    assert.deepEqual(await post(server, "/api/create", { model: "copied", from: secret }), notFound(secret));
    const openai = await post(server, "/v1/chat/completions", { model: secret, messages: [{ role: "user", content: "hi" }] });
    assert.equal(openai.status, 404);
    assert.equal(openai.body.error.message, `model '${secret}' not found`);
    const anthropic = await post(server, "/v1/messages", { model: secret, max_tokens: 4, messages: [{ role: "user", content: "hi" }] });
    assert.equal(anthropic.status, 404);
    const socket = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
    await new Promise((resolve) => socket.once("open", resolve));
    socket.send(JSON.stringify({ id: 1, type: "generate", model: secret, prompt: "hi" }));
    const [reply] = (await new Promise((resolve) => socket.once("message", (data) => resolve([JSON.parse(String(data))])))) as [any];
    socket.close();
    assert.deepEqual({ id: reply.id, type: reply.type, status: reply.status, error: reply.error }, { id: 1, type: "error", status: 404, error: `model '${secret}' not found` });
  });
});

describe("path models without a list", () => {
  test("are served on a loopback bind, refused on any other", async () => {
    const model = path.join(outside, "secret.gguf");
    const engine = new FakeEngine();
    const loopback = await serve(engine, {});
    try {
      await post(loopback, "/api/generate", { model, prompt: "hi", stream: false });
      assert.equal(engine.requests.length, 1);
    } finally {
      await loopback.close();
    }
    const everywhere = await serve(engine, { host: "0.0.0.0" });
    try {
      assert.deepEqual(await post(everywhere, "/api/generate", { model, prompt: "hi", stream: false }), notFound(model));
      assert.equal(engine.requests.length, 1);
      // Store names are not paths: they reach the engine as before.
      assert.equal((await post(everywhere, "/api/generate", { model: "fake-model", prompt: "hi", stream: false })).status, 200);
    } finally {
      await everywhere.close();
    }
  });
});
