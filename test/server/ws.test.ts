// WebSocket streaming (`/ws`) against the real engine and the stories260K model: several requests
// per socket, cancel, a socket closed mid-stream, malformed, large (read on a body worker first) and
// oversized messages, and the upgrade's checks, each with other requests still served.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import WebSocket from "ws";
import { Engine } from "../../src/engine/engine.js";
import { startServer, type RunningServer } from "../../src/server/index.js";
import { MAX_REQUESTS_PER_SOCKET } from "../../src/server/ws.js";
import { REFERENCE_PROMPT, REFERENCE_TEXT, storiesPath } from "../helpers/models.js";

/** Past 64 KiB, where a message is read on a body worker first (src/server/json-body.ts). */
const BODY_LIMIT = "1mb";
const MAX_MESSAGES = 8;
const GREEDY = { num_predict: 48, temperature: 0 };
/** Long enough to be cancelled mid-way: stories260K's 512-token context at most. */
const LONG = { num_predict: 400, temperature: 0, ignore_eos: true };

type Message = { id: unknown; type: string; done?: boolean; response?: string; error?: string; status?: number; [key: string]: unknown };

/** A socket that records every message and lets a test wait for a request's last one. */
class Client {
  readonly messages: Message[] = [];
  private readonly listeners = new Set<() => void>();
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly socket: WebSocket) {
    socket.on("message", (data) => {
      this.messages.push(JSON.parse(data.toString()) as Message);
      for (const listener of this.listeners) listener();
    });
    this.closed = new Promise((resolve) => socket.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<Client> {
    const socket = new WebSocket(url, { headers });
    return new Promise((resolve, reject) => {
      socket.once("open", () => resolve(new Client(socket)));
      socket.once("error", reject);
      socket.once("unexpected-response", (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    });
  }

  send(message: object): void {
    this.socket.send(JSON.stringify(message));
  }

  of(id: unknown): Message[] {
    return this.messages.filter((m) => m.id === id);
  }

  /** Resolves once a message matches (messages already received count). */
  waitFor(match: (m: Message) => boolean, timeoutMs = 120_000): Promise<Message> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.messages.find(match);
        if (!found) return;
        this.listeners.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`no matching message in ${timeoutMs} ms; got ${JSON.stringify(this.messages.slice(-5))}`));
      }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  /** The request's messages once it ended (its done chunk, its one response, or an error). */
  async finished(id: unknown): Promise<Message[]> {
    await this.waitFor((m) => m.id === id && (m.done === true || m.type === "error" || m.type === "embed"));
    return this.of(id);
  }

  /** The text a generate request streamed. */
  async text(id: unknown): Promise<string> {
    const messages = await this.finished(id);
    const error = messages.find((m) => m.type === "error");
    assert.equal(error, undefined, `request ${String(id)} failed: ${error?.error}`);
    return messages.map((m) => m.response ?? "").join("");
  }
}

/** `{"$ref": "#/$defs/d0"}` with d0 -> d1 -> ... -> d(n-1) -> a string. */
function refChain(n: number): object {
  const defs: Record<string, object> = {};
  for (let i = 0; i < n; i++) defs[`d${i}`] = i + 1 < n ? { $ref: `#/$defs/d${i + 1}` } : { type: "string" };
  return { $ref: "#/$defs/d0", $defs: defs };
}

describe("WebSocket streaming", () => {
  let engine: Engine;
  let server: RunningServer;
  let url: string;

  before(async () => {
    engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-ws-")), parallel: 8, maxQueue: 128, threads: 1 });
    server = await startServer({
      engine, logger: pino({ level: "silent" }),
      config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: BODY_LIMIT, maxMessages: MAX_MESSAGES, promptLimit: "96kb" },
    });
    url = `ws://127.0.0.1:${server.port}/ws`;
  });
  after(async () => {
    await server.close();
    await engine.close();
  });

  /** Every sequence has left and holds no cells beyond the prefix cache's blocks. */
  async function assertSequencesFreed(): Promise<void> {
    const deadline = Date.now() + 5000;
    while (engine.stats()[0]!.running + engine.stats()[0]!.waiting > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const [s] = engine.stats();
    assert.equal(s!.running, 0);
    assert.equal(s!.waiting, 0);
    assert.equal(s!.kv.usedCells, s!.kv.cachedBlocks * 16);
  }

  test("several requests on one socket stream at once, each tagged with its id and greedy-exact", async () => {
    const client = await Client.open(url);
    const ids = [1, "two", 3];
    for (const id of ids) client.send({ id, type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: GREEDY });
    client.send({ id: "chat", type: "chat", model: storiesPath, messages: [{ role: "user", content: "hi" }], options: { num_predict: 4 } });
    client.send({ id: "embed", type: "embed", model: storiesPath, input: ["one", "two"] });
    client.send({ id: "single", type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, stream: false, options: GREEDY });

    for (const id of ids) assert.equal(await client.text(id), REFERENCE_TEXT);
    // They ran side by side: each streamed chunks before the others were done.
    const firstDone = Math.min(...ids.map((id) => client.messages.findIndex((m) => m.id === id && m.done)));
    for (const id of ids) assert.ok(client.messages.findIndex((m) => m.id === id) < firstDone, `request ${id} started before any finished`);
    assert.ok(client.of(1).every((m) => m.type === "generate"));

    const chat = await client.finished("chat");
    assert.ok(chat.every((m) => m.type === "chat"));
    assert.equal(chat.at(-1)!.done, true);
    assert.equal((chat.at(-1)!.message as { role: string }).role, "assistant");
    const [embed] = await client.finished("embed");
    assert.equal((embed!.embeddings as number[][]).length, 2);
    const single = await client.finished("single");
    assert.equal(single.length, 1);
    assert.equal(single[0]!.response, REFERENCE_TEXT);
    client.socket.close();
    await assertSequencesFreed();
  });

  test("cancel ends one request with a 499 error; the others on the socket finish", async () => {
    const client = await Client.open(url);
    client.send({ id: "long", type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: LONG });
    client.send({ id: "short", type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: GREEDY });
    await client.waitFor((m) => m.id === "long" && m.type === "generate");
    client.send({ id: "long", type: "cancel" });

    const long = await client.finished("long");
    assert.deepEqual({ ...long.at(-1), id: "long" }, { id: "long", type: "error", error: "request cancelled", status: 499, code: "cancelled" });
    assert.ok(long.filter((m) => m.type === "generate").length < LONG.num_predict);
    assert.equal(await client.text("short"), REFERENCE_TEXT);
    await assertSequencesFreed();

    // A cancelled id can be used again, and cancelling what is not in flight is an error for that id.
    client.messages.length = 0;
    client.send({ id: "long", type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: GREEDY });
    assert.equal(await client.text("long"), REFERENCE_TEXT);
    client.send({ id: "gone", type: "cancel" });
    const [gone] = await client.finished("gone");
    assert.equal(gone!.status, 404);
    assert.match(gone!.error!, /no request with id "gone" is in flight/);
    client.socket.close();
  });

  test("a socket closed mid-stream cancels its requests and frees their cells; another socket is unaffected", async () => {
    const leaving = await Client.open(url);
    const staying = await Client.open(url);
    for (const id of [1, 2, 3]) leaving.send({ id, type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: LONG });
    await leaving.waitFor((m) => m.id === 3 && m.type === "generate");
    staying.send({ id: 1, type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: GREEDY });
    assert.ok(engine.stats()[0]!.running >= 3);
    leaving.socket.terminate();

    assert.equal(await staying.text(1), REFERENCE_TEXT);
    await assertSequencesFreed();
    assert.ok(engine.stats()[0]!.kv.usedCells < 3 * LONG.num_predict, "the closed socket's sequences gave their cells back");
    staying.socket.close();
  });

  test("bad messages get an error with their id; the socket keeps serving its other requests", async () => {
    const client = await Client.open(url);
    client.send({ id: "good", type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: LONG });
    await client.waitFor((m) => m.id === "good");
    client.socket.send("{not json");
    client.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    client.send({ type: "generate", model: storiesPath, prompt: "no id" });
    client.send({ id: { nested: true }, type: "generate" });
    client.send({ id: "t", type: "fly" });
    client.send({ id: "m", type: "generate", prompt: "no model" });
    client.send({ id: "o", type: "generate", model: storiesPath, prompt: "x", options: { temperature: "hot" } });
    client.send({ id: "u", type: "generate", model: "no-such-model", prompt: "x" });
    client.send({ id: "e", type: "embed", model: storiesPath });
    client.send({ id: "good", type: "generate", model: storiesPath, prompt: "same id again" });

    const errors = () => client.messages.filter((m) => m.type === "error");
    await client.waitFor(() => errors().length === 10);
    const withoutId = errors().filter((m) => m.id === null).map((m) => m.error);
    assert.equal(withoutId.length, 4);
    assert.match(withoutId[0]!, /^invalid JSON message/);
    assert.equal(withoutId[1], "binary messages are not supported: send JSON text");
    assert.equal(withoutId[2], "id is required");
    assert.match(withoutId[3]!, /^invalid id/);
    const byId = (id: string) => errors().find((m) => m.id === id)!;
    assert.match(byId("t").error!, /^invalid type: expected one of "generate", "chat", "embed", "cancel"/);
    assert.equal(byId("m").error, "model is required");
    assert.match(byId("o").error!, /^invalid options\.temperature/);
    assert.equal(byId("u").status, 404);
    assert.equal(byId("e").error, "input is required");
    assert.equal(byId("good").error, 'a request with id "good" is already in flight');
    for (const e of errors()) assert.equal(e.status, e.id === "u" ? 404 : 400, JSON.stringify(e));

    // The first "good" went on as if nothing happened.
    await client.waitFor((m) => m.id === "good" && m.done === true);
    const text = client.of("good").filter((m) => m.type === "generate").map((m) => m.response).join("");
    assert.ok(text.startsWith(REFERENCE_TEXT), text);
    assert.equal(client.socket.readyState, WebSocket.OPEN);
    client.socket.close();
  });

  test(`at most ${MAX_REQUESTS_PER_SOCKET} requests in flight per socket; the rest get 429 with their id`, async () => {
    const client = await Client.open(url);
    const ids = Array.from({ length: MAX_REQUESTS_PER_SOCKET + 1 }, (_, i) => i);
    for (const id of ids) client.send({ id, type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: { num_predict: 4, temperature: 0 } });
    const last = await client.finished(MAX_REQUESTS_PER_SOCKET);
    assert.equal(last.length, 1);
    assert.equal(last[0]!.status, 429);
    assert.match(last[0]!.error!, /too many requests in flight on this socket/);
    for (const id of ids.slice(0, -1)) assert.equal((await client.finished(id)).at(-1)!.done, true);
    // Finished requests make room again.
    client.send({ id: "after", type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: GREEDY });
    assert.equal(await client.text("after"), REFERENCE_TEXT);
    client.socket.close();
  });

  test("an oversized message closes its socket with 1009; other sockets are unaffected", async () => {
    const oversized = await Client.open(url);
    const other = await Client.open(url);
    other.send({ id: 1, type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: GREEDY });
    oversized.send({ id: 1, type: "generate", model: storiesPath, prompt: "x".repeat(1025 * 1024) });
    assert.equal((await oversized.closed).code, 1009);
    assert.equal(await other.text(1), REFERENCE_TEXT);
    other.socket.close();
  });

  test("a malformed frame (invalid UTF-8 text) closes its socket with 1007; other sockets are unaffected", async () => {
    const broken = await Client.open(url);
    const other = await Client.open(url);
    other.send({ id: 1, type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: GREEDY });
    broken.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    assert.equal((await broken.closed).code, 1007);
    assert.equal(await other.text(1), REFERENCE_TEXT);
    other.socket.close();
  });

  test("the upgrade is refused for other paths and foreign origins; plain GET /ws gets 426; HTTP is served meanwhile", async () => {
    const streaming = await Client.open(url);
    streaming.send({ id: 1, type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: GREEDY });
    await assert.rejects(Client.open(`ws://127.0.0.1:${server.port}/api/chat`), { status: 404 });
    await assert.rejects(Client.open(url, { Origin: "https://evil.example" }), { status: 403 });
    await assert.rejects(Client.open(url, { Host: "evil.example" }), { status: 403 });
    const page = await Client.open(url, { Origin: `http://127.0.0.1:${server.port}` });
    page.socket.close();
    const plain = await fetch(`http://127.0.0.1:${server.port}/ws`);
    assert.equal(plain.status, 426);
    assert.match(((await plain.json()) as { error: string }).error, /WebSocket endpoint/);
    const http = await fetch(`http://127.0.0.1:${server.port}/api/generate`, {
      method: "POST",
      body: JSON.stringify({ model: storiesPath, prompt: REFERENCE_PROMPT, stream: false, options: GREEDY }),
    });
    assert.equal(((await http.json()) as { response: string }).response, REFERENCE_TEXT);
    assert.equal(await streaming.text(1), REFERENCE_TEXT);
    streaming.socket.close();
  });

  /** The message with a field no request reads, to 70,000 bytes of JSON: past the 64 KiB at which a message goes to a worker. */
  const padded = (message: object) => ({ ...message, padding: "x".repeat(70_000 - JSON.stringify(message).length) });

  test("messages of 64 KiB or more, read on a body worker first: a bad one gets the error a small one gets, with its id; a good one is served as a small one is", async () => {
    const client = await Client.open(url);
    const user = { role: "user", content: "hi" };
    client.socket.send("{not json");
    client.socket.send(`{not json${" ".repeat(70_000)}`);
    client.send(padded({ type: "generate", model: storiesPath, prompt: "no id" }));
    client.send(padded({ id: "t", type: "fly" }));
    client.send(padded({ id: "many", type: "chat", model: storiesPath, messages: Array(MAX_MESSAGES + 1).fill(user) }));
    client.send({ id: "big", type: "generate", model: storiesPath, prompt: "x".repeat(100 * 1024) });
    client.send({ id: "ref", type: "generate", model: storiesPath, prompt: "hi", format: refChain(40) });
    client.send(padded({ id: "ref-large", type: "generate", model: storiesPath, prompt: "hi", format: refChain(40) }));
    client.send(padded({ id: "good", type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: GREEDY }));

    const errors = () => client.messages.filter((m) => m.type === "error");
    await client.waitFor(() => errors().length === 8);
    const withoutId = errors().filter((m) => m.id === null);
    assert.equal(withoutId.length, 3);
    assert.match(withoutId[0]!.error!, /^invalid JSON message/);
    assert.equal(withoutId[1]!.error, withoutId[0]!.error, "the large one's parse error is the small one's");
    assert.equal(withoutId[2]!.error, "id is required");
    const byId = (id: string) => errors().find((m) => m.id === id)!;
    assert.match(byId("t").error!, /^invalid type: expected one of "generate", "chat", "embed", "cancel"/);
    assert.deepEqual(byId("many"), {
      id: "many", type: "error", error: `too many messages: ${MAX_MESSAGES + 1}, this server takes at most ${MAX_MESSAGES} in one request`, status: 400, code: "bad_request",
    });
    assert.deepEqual({ ...byId("big"), error: undefined }, { id: "big", type: "error", error: undefined, status: 413, code: "payload_too_large" });
    assert.match(byId("big").error!, /^prompt too large: 102400 bytes of text, this server takes at most 98304$/);
    assert.match(byId("ref").error!, /\$ref/);
    assert.equal(byId("ref-large").error, byId("ref").error, "the large one's schema error is the small one's");
    for (const e of errors()) assert.equal(e.status, e.id === "big" ? 413 : 400, JSON.stringify(e));

    assert.equal(await client.text("good"), REFERENCE_TEXT);
    assert.equal(client.socket.readyState, WebSocket.OPEN);
    client.socket.close();
  });

  test("a socket's messages are handled in the order they came: a cancel finds the large request sent just before it", async () => {
    const client = await Client.open(url);
    client.send(padded({ id: "long", type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: LONG }));
    client.send({ id: "long", type: "cancel" });
    const long = await client.finished("long");
    assert.deepEqual({ ...long.at(-1), id: "long" }, { id: "long", type: "error", error: "request cancelled", status: 499, code: "cancelled" });
    assert.equal(long.filter((m) => m.type === "error").length, 1, JSON.stringify(long.filter((m) => m.type === "error")));
    client.socket.close();
  });
});

describe("WebSocket streaming with API keys", () => {
  test("an upgrade without the key or with a wrong one is refused with 401; the right key streams", async () => {
    const engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-ws-keys-")), parallel: 2, threads: 1 });
    const apiKeys = [{ name: "ci", key: "sk-right" }];
    const server = await startServer({
      engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: BODY_LIMIT, apiKeys }, logger: pino({ level: "silent" }),
    });
    const url = `ws://127.0.0.1:${server.port}/ws`;
    try {
      await assert.rejects(Client.open(url), { status: 401 });
      await assert.rejects(Client.open(url, { authorization: "Bearer sk-wrong" }), { status: 401 });
      const client = await Client.open(url, { "x-api-key": "sk-right" });
      client.send({ id: "a", type: "generate", model: storiesPath, prompt: REFERENCE_PROMPT, options: { temperature: 0, num_predict: 4 } });
      const done = await client.waitFor((m) => m.id === "a" && m.done === true);
      assert.equal(done.done, true);
      client.socket.close();
    } finally {
      await server.close();
      await engine.close();
    }
  });
});
