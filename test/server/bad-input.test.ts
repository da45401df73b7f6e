// Bad input for every endpoint: each case must get its status and a well-formed error body
// (Ollama's `{"error": "..."}` or OpenAI's error object), and the server must still answer after.
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { BUSY_MESSAGE } from "../../src/api/errors.js";
import { parseKeepAlive, resolveOptions } from "../../src/engine/options.js";
import { startServer, type RunningServer } from "../../src/server/index.js";
import { isAllowedHost, isLoopbackBind } from "../../src/server/security.js";
import { FakeEngine } from "../helpers/fake-engine.js";

const BODY_LIMIT = "64kb";
const DIGEST = `sha256:${"0".repeat(64)}`;

interface Reply {
  status: number;
  contentType: string | undefined;
  text: string;
}

/** Raw HTTP, so a case can send any bytes and any Host header. */
function send(port: number, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const length = body === undefined ? {} : { "Content-Length": String(Buffer.byteLength(body)) };
    const req = request({ host: "127.0.0.1", port, method, path, headers: { ...length, ...headers } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, contentType: res.headers["content-type"], text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

interface Case {
  name: string;
  method?: string;
  path: string;
  /** An object is sent as JSON; a string as raw bytes. */
  body?: object | string;
  headers?: Record<string, string>;
  /** Puts the engine in a state for this case; returns the undo. */
  setup?: (engine: FakeEngine) => () => void;
  status: number;
  /** Expected error message; absent for responses without a body (HEAD) or successes. */
  error?: RegExp;
}

const chat = (extra: object) => ({ model: "fake-model", messages: [{ role: "user", content: "hi" }], ...extra });
const oaiChat = (extra: object) => ({ model: "fake-model", messages: [{ role: "user", content: "hi" }], ...extra });
const busy = (engine: FakeEngine) => {
  engine.maxPending = 0;
  return () => (engine.maxPending = Infinity);
};

const CASES: Case[] = [
  // -- transport ------------------------------------------------------------------------------
  { name: "malformed JSON", path: "/api/generate", body: '{"model":', status: 400, error: /^invalid JSON body/ },
  { name: "JSON that is not an object", path: "/api/generate", body: '"hello"', status: 400, error: /^invalid JSON body/ },
  { name: "JSON array body", path: "/api/generate", body: "[1]", status: 400, error: /^invalid request body: expected a JSON object$/ },
  { name: "empty body", path: "/api/generate", body: "", status: 400, error: /^model is required$/ },
  { name: "huge body", path: "/api/generate", body: { model: "fake-model", prompt: "x".repeat(100_000) }, status: 413, error: /too large/ },
  { name: "unknown route", method: "GET", path: "/api/nope", status: 404, error: /^GET \/api\/nope not found$/ },
  { name: "wrong method", method: "GET", path: "/api/generate", status: 404, error: /not found/ },
  { name: "non-local Host header", method: "GET", path: "/api/version", headers: { Host: "evil.example" }, status: 403, error: /host not allowed/ },
  { name: "disallowed CORS origin", method: "GET", path: "/api/tags", headers: { Origin: "https://evil.example" }, status: 403, error: /origin not allowed/ },

  // -- /api/generate --------------------------------------------------------------------------
  { name: "generate: missing model", path: "/api/generate", body: { prompt: "hi" }, status: 400, error: /^model is required$/ },
  { name: "generate: model not a string", path: "/api/generate", body: { model: 5 }, status: 400, error: /^invalid model: expected string$/ },
  { name: "generate: prompt not a string", path: "/api/generate", body: { model: "fake-model", prompt: 1 }, status: 400, error: /^invalid prompt: expected string$/ },
  { name: "generate: stream not a boolean", path: "/api/generate", body: { model: "fake-model", stream: "yes" }, status: 400, error: /^invalid stream: expected boolean$/ },
  { name: "generate: options.temperature wrong type", path: "/api/generate", body: { model: "fake-model", options: { temperature: "hot" } }, status: 400, error: /^invalid options\.temperature: expected number$/ },
  { name: "generate: options.num_predict not an integer", path: "/api/generate", body: { model: "fake-model", options: { num_predict: 1.5 } }, status: 400, error: /^invalid options\.num_predict: expected integer$/ },
  { name: "generate: unknown option is ignored", path: "/api/generate", body: { model: "fake-model", stream: false, options: { no_such_option: 1 } }, status: 200 },
  { name: "generate: bad format", path: "/api/generate", body: { model: "fake-model", format: "xml" }, status: 400, error: /^invalid format: expected "json" or a JSON Schema object$/ },
  { name: "generate: bad keep_alive string", path: "/api/generate", body: { model: "fake-model", keep_alive: "5 minutes" }, status: 400, error: /^invalid keep_alive/ },
  { name: "generate: bad keep_alive type", path: "/api/generate", body: { model: "fake-model", keep_alive: true }, status: 400, error: /^invalid keep_alive/ },
  { name: "generate: top_logprobs 21", path: "/api/generate", body: { model: "fake-model", top_logprobs: 21 }, status: 400, error: /^invalid top_logprobs: must be <= 20$/ },
  { name: "generate: raw with system", path: "/api/generate", body: { model: "fake-model", raw: true, system: "x" }, status: 400, error: /^raw mode does not support template, system, or context$/ },
  { name: "generate: raw with context", path: "/api/generate", body: { model: "fake-model", raw: true, context: [1] }, status: 400, error: /^raw mode does not support/ },
  { name: "generate: bad think", path: "/api/generate", body: { model: "fake-model", think: "extreme" }, status: 400, error: /^invalid think/ },
  { name: "generate: unknown model", path: "/api/generate", body: { model: "nope" }, status: 404, error: /^model 'nope' not found$/ },
  { name: "generate: model without completion", path: "/api/generate", body: { model: "fake-embed" }, status: 400, error: /does not support generate/ },
  { name: "generate: busy", path: "/api/generate", body: { model: "fake-model" }, setup: busy, status: 503, error: new RegExp(`^${BUSY_MESSAGE.replace(/\./g, "\\.")}$`) },

  // -- /api/chat ------------------------------------------------------------------------------
  { name: "chat: messages not an array", path: "/api/chat", body: { model: "fake-model", messages: "hi" }, status: 400, error: /^invalid messages: expected array$/ },
  { name: "chat: bad role", path: "/api/chat", body: chat({ messages: [{ role: "bot", content: "x" }] }), status: 400, error: /^invalid messages\.0\.role/ },
  { name: "chat: tool call arguments as a string", path: "/api/chat", body: chat({ messages: [{ role: "assistant", tool_calls: [{ function: { name: "f", arguments: "{}" } }] }] }), status: 400, error: /^invalid messages\.0\.tool_calls\.0\.function\.arguments: expected record$/ },
  { name: "chat: tool without function", path: "/api/chat", body: chat({ tools: [{ type: "function" }] }), status: 400, error: /^tools\.0\.function is required$/ },
  { name: "chat: bad format", path: "/api/chat", body: chat({ format: 42 }), status: 400, error: /^invalid format/ },
  { name: "chat: top_logprobs 21", path: "/api/chat", body: chat({ top_logprobs: 21 }), status: 400, error: /^invalid top_logprobs/ },
  { name: "chat: unknown model", path: "/api/chat", body: chat({ model: "nope" }), status: 404, error: /^model 'nope' not found$/ },
  { name: "chat: busy", path: "/api/chat", body: chat({ stream: false }), setup: busy, status: 503, error: /^server busy/ },

  // -- embeddings and tokens ------------------------------------------------------------------
  { name: "embed: input not text", path: "/api/embed", body: { model: "fake-embed", input: 5 }, status: 400, error: /^invalid input/ },
  { name: "embed: dimensions 0", path: "/api/embed", body: { model: "fake-embed", input: "a", dimensions: 0 }, status: 400, error: /^invalid dimensions: must be >= 1$/ },
  { name: "embed: model without embeddings", path: "/api/embed", body: { model: "fake-model", input: "a" }, status: 400, error: /does not support embeddings/ },
  { name: "embed: unknown model", path: "/api/embed", body: { model: "nope", input: "a" }, status: 404, error: /not found/ },
  { name: "embeddings: prompt not a string", path: "/api/embeddings", body: { model: "fake-embed", prompt: ["a"] }, status: 400, error: /^invalid prompt: expected string$/ },
  { name: "tokenize: missing content", path: "/api/tokenize", body: { model: "fake-model" }, status: 400, error: /^content is required$/ },
  { name: "detokenize: tokens not integers", path: "/api/detokenize", body: { model: "fake-model", tokens: ["a"] }, status: 400, error: /^invalid tokens\.0: expected number$/ },
  { name: "detokenize: fractional token", path: "/api/detokenize", body: { model: "fake-model", tokens: [1.5] }, status: 400, error: /^invalid tokens\.0: expected integer$/ },
  { name: "detokenize: unknown model", path: "/api/detokenize", body: { model: "nope", tokens: [1] }, status: 404, error: /not found/ },

  // -- model management -----------------------------------------------------------------------
  { name: "show: missing model", path: "/api/show", body: {}, status: 400, error: /^model is required$/ },
  { name: "show: unknown model", path: "/api/show", body: { name: "nope" }, status: 404, error: /^model 'nope' not found$/ },
  { name: "show: session options wrong type", path: "/api/show", body: { model: "fake-model", options: { temperature: "hot" } }, status: 400, error: /^invalid options\.temperature: expected number$/ },
  { name: "show: session system not text", path: "/api/show", body: { model: "fake-model", system: 5 }, status: 400, error: /^invalid system: expected string$/ },
  { name: "pull: empty name", path: "/api/pull", body: { name: "" }, status: 400, error: /^model is required$/ },
  { name: "pull: insecure not a boolean", path: "/api/pull", body: { name: "x", insecure: "no" }, status: 400, error: /^invalid insecure/ },
  { name: "push: unknown model", path: "/api/push", body: { name: "nope" }, status: 404, error: /not found/ },
  { name: "create: neither from nor files", path: "/api/create", body: { model: "m" }, status: 400, error: /^neither 'from' or 'files' was specified$/ },
  { name: "create: bad file digest", path: "/api/create", body: { model: "m", files: { "a.gguf": "md5:1" } }, status: 400, error: /^invalid files\.a\.gguf/ },
  { name: "create: unknown base model", path: "/api/create", body: { model: "m", from: "nope" }, status: 404, error: /not found/ },
  { name: "copy: missing destination", path: "/api/copy", body: { source: "fake-model" }, status: 400, error: /^destination is required$/ },
  { name: "copy: unknown source", path: "/api/copy", body: { source: "nope", destination: "x" }, status: 404, error: /not found/ },
  { name: "delete: missing model", method: "DELETE", path: "/api/delete", body: {}, status: 400, error: /^model is required$/ },
  { name: "delete: unknown model", method: "DELETE", path: "/api/delete", body: { name: "nope" }, status: 404, error: /^model 'nope' not found$/ },
  { name: "blobs: bad digest (HEAD)", method: "HEAD", path: "/api/blobs/abc", status: 400 },
  { name: "blobs: bad digest (POST)", path: "/api/blobs/sha256:xyz", body: "data", status: 400, error: /^invalid digest format/ },
  { name: "blobs: digest mismatch", path: `/api/blobs/${DIGEST}`, body: "data", status: 400, error: /^digest mismatch$/ },

  // -- OpenAI ---------------------------------------------------------------------------------
  { name: "openai: malformed JSON", path: "/v1/chat/completions", body: "{", status: 400, error: /^invalid JSON body/ },
  { name: "openai: huge body", path: "/v1/chat/completions", body: oaiChat({ stop: "x".repeat(100_000) }), status: 413, error: /too large/ },
  { name: "openai: unknown route", method: "GET", path: "/v1/nope", status: 404, error: /not found/ },
  { name: "openai chat: missing messages", path: "/v1/chat/completions", body: { model: "fake-model" }, status: 400, error: /^messages is required$/ },
  { name: "openai chat: empty messages", path: "/v1/chat/completions", body: { model: "fake-model", messages: [] }, status: 400, error: /^invalid messages: must not be empty$/ },
  { name: "openai chat: n 0", path: "/v1/chat/completions", body: oaiChat({ n: 0 }), status: 400, error: /^invalid n: must be >= 1$/ },
  { name: "openai chat: n 129", path: "/v1/chat/completions", body: oaiChat({ n: 129 }), status: 400, error: /^invalid n: must be <= 128$/ },
  { name: "openai chat: n 1.5", path: "/v1/chat/completions", body: oaiChat({ n: 1.5 }), status: 400, error: /^invalid n/ },
  { name: "openai completions: n 0", path: "/v1/completions", body: { model: "fake-model", prompt: "hi", n: 0 }, status: 400, error: /^invalid n: must be >= 1$/ },
  { name: "openai completions: empty prompt list", path: "/v1/completions", body: { model: "fake-model", prompt: [] }, status: 400, error: /^invalid prompt/ },
  { name: "openai completions: 129 prompts", path: "/v1/completions", body: { model: "fake-model", prompt: Array(129).fill("hi") }, status: 400, error: /^invalid prompt/ },
  { name: "openai completions: token-id prompts", path: "/v1/completions", body: { model: "fake-model", prompt: [1, 2] }, status: 400, error: /^invalid prompt/ },
  { name: "openai completions: 2 prompts x n 65", path: "/v1/completions", body: { model: "fake-model", prompt: ["a", "b"], n: 65 }, status: 400, error: /^too many choices: 2 prompts x n 65 is over 128$/ },
  { name: "openai chat: best_of 2", path: "/v1/chat/completions", body: oaiChat({ best_of: 2 }), status: 400, error: /^invalid best_of: only best_of=1 is supported$/ },
  { name: "openai chat: min_tokens -1", path: "/v1/chat/completions", body: oaiChat({ min_tokens: -1 }), status: 400, error: /^invalid min_tokens: must be >= 0$/ },
  { name: "ollama generate: options.min_tokens 1.5", path: "/api/generate", body: { model: "fake-model", prompt: "hi", options: { min_tokens: 1.5 } }, status: 400, error: /^invalid options\.min_tokens/ },
  { name: "openai chat: top_k -2", path: "/v1/chat/completions", body: oaiChat({ top_k: -2 }), status: 400, error: /^invalid top_k: must be >= -1$/ },
  { name: "openai chat: min_p 2", path: "/v1/chat/completions", body: oaiChat({ min_p: 2 }), status: 400, error: /^invalid min_p: must be <= 1$/ },
  { name: "openai chat: repetition_penalty 0", path: "/v1/chat/completions", body: oaiChat({ repetition_penalty: 0 }), status: 400, error: /^invalid repetition_penalty: must be > 0$/ },
  { name: "openai chat: logit_bias 101", path: "/v1/chat/completions", body: oaiChat({ logit_bias: { "5": 101 } }), status: 400, error: /^invalid logit_bias\.5: must be <= 100$/ },
  { name: "openai chat: logit_bias key not a token id", path: "/v1/chat/completions", body: oaiChat({ logit_bias: { abc: 1 } }), status: 400, error: /^invalid logit_bias/ },
  { name: "openai chat: reasoning_effort xhigh", path: "/v1/chat/completions", body: oaiChat({ reasoning_effort: "xhigh" }), status: 400, error: /^invalid reasoning_effort/ },
  { name: "openai chat: temperature 3", path: "/v1/chat/completions", body: oaiChat({ temperature: 3 }), status: 400, error: /^invalid temperature: must be <= 2$/ },
  { name: "openai chat: bad response_format", path: "/v1/chat/completions", body: oaiChat({ response_format: { type: "xml" } }), status: 400, error: /^invalid response_format/ },
  { name: "openai chat: top_logprobs 21", path: "/v1/chat/completions", body: oaiChat({ logprobs: true, top_logprobs: 21 }), status: 400, error: /^invalid top_logprobs/ },
  {
    name: "openai chat: tool arguments not JSON",
    path: "/v1/chat/completions",
    body: oaiChat({ messages: [{ role: "assistant", tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{oops" } }] }] }),
    status: 400,
    error: /^invalid tool_calls arguments/,
  },
  {
    name: "openai chat: image URL of another scheme",
    path: "/v1/chat/completions",
    body: oaiChat({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "file:///etc/passwd" } }] }] }),
    status: 400,
    error: /^invalid image_url/,
  },
  { name: "openai chat: unknown model", path: "/v1/chat/completions", body: oaiChat({ model: "nope" }), status: 404, error: /^model 'nope' not found$/ },
  { name: "openai chat: busy", path: "/v1/chat/completions", body: oaiChat({ stream: true }), setup: busy, status: 503, error: /^server busy/ },
  { name: "openai completions: missing prompt", path: "/v1/completions", body: { model: "fake-model" }, status: 400, error: /^prompt is required$/ },
  { name: "openai completions: max_tokens 0", path: "/v1/completions", body: { model: "fake-model", prompt: "a", max_tokens: 0 }, status: 400, error: /^invalid max_tokens: must be >= 1$/ },
  { name: "openai embeddings: missing input", path: "/v1/embeddings", body: { model: "fake-embed" }, status: 400, error: /^input is required$/ },
  { name: "openai embeddings: bad encoding_format", path: "/v1/embeddings", body: { model: "fake-embed", input: "a", encoding_format: "int8" }, status: 400, error: /^invalid encoding_format/ },
  { name: "openai models: unknown model", method: "GET", path: "/v1/models/nope", status: 404, error: /^model 'nope' not found$/ },
];

function assertErrorBody(path: string, reply: Reply, expected: RegExp): void {
  assert.match(reply.contentType ?? "", /^application\/json/);
  const body = JSON.parse(reply.text) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body), ["error"]);
  if (!path.startsWith("/v1/")) {
    assert.equal(typeof body.error, "string");
    assert.match(body.error as string, expected);
    return;
  }
  const error = body.error as Record<string, unknown>;
  assert.deepEqual(Object.keys(error), ["message", "type", "param", "code"]);
  assert.match(error.message as string, expected);
  const type = reply.status === 404 ? "not_found_error" : reply.status < 500 ? "invalid_request_error" : "api_error";
  assert.equal(error.type, type);
  assert.equal(error.param, null);
  assert.equal(error.code, null);
}

describe("bad input", () => {
  let engine: FakeEngine;
  let server: RunningServer;

  before(async () => {
    engine = new FakeEngine();
    server = await startServer({
      engine,
      config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: BODY_LIMIT },
      logger: pino({ level: "silent" }),
    });
  });
  after(() => server.close());

  for (const c of CASES) {
    test(`${c.name} -> ${c.status}`, async () => {
      const undo = c.setup?.(engine);
      try {
        const body = c.body === undefined || typeof c.body === "string" ? c.body : JSON.stringify(c.body);
        const reply = await send(server.port, c.method ?? "POST", c.path, body, c.headers);
        assert.equal(reply.status, c.status, reply.text);
        if (c.error) assertErrorBody(c.path, reply, c.error);
      } finally {
        undo?.();
      }
      const version = await send(server.port, "GET", "/api/version");
      assert.equal(version.status, 200);
    });
  }

  test("startServer reports a port in use, naming it", async () => {
    await assert.rejects(
      startServer({
        engine,
        config: { host: "127.0.0.1", port: server.port, origins: [], bodyLimit: BODY_LIMIT },
        logger: pino({ level: "silent" }),
      }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "address_in_use");
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${server.port}`));
        return true;
      },
    );
  });
});

describe("edge parsing", () => {
  test("parses keep_alive as seconds or Go durations, negative meaning forever", () => {
    const defaultMs = 300_000;
    const cases: Array<[number | string | undefined, number]> = [
      [undefined, defaultMs],
      [0, 0],
      ["0", 0],
      [30, 30_000],
      ["300", 300_000],
      ["5m", 300_000],
      ["1h30m", 5_400_000],
      ["1.5s", 1500],
      ["250ms", 250],
      [-1, Infinity],
      ["-1m", Infinity],
    ];
    for (const [value, ms] of cases) assert.equal(parseKeepAlive(value, defaultMs), ms, String(value));
    assert.throws(() => parseKeepAlive("soon", defaultMs), /invalid keep_alive/);
  });

  test("resolves options: request over model parameters over Ollama defaults", () => {
    const resolved = resolveOptions({ temperature: 0.1, top_k: undefined }, { top_k: 20, temperature: 0.5 }, 2048);
    assert.equal(resolved.temperature, 0.1);
    assert.equal(resolved.top_k, 20);
    assert.equal(resolved.num_ctx, 2048);
    assert.equal(resolved.num_predict, -1);
    assert.equal(resolved.top_p, 0.9);
    assert.equal(resolved.repeat_last_n, 64);
    assert.equal(resolved.seed, -1);
    assert.equal(resolved.num_batch, 512);
    assert.deepEqual(resolved.stop, []);
  });

  test("allows only local Host headers on a loopback bind", () => {
    for (const host of [undefined, "localhost:11434", "127.0.0.1", "[::1]:11434", "box.local", "10.1.2.3:80", "0.0.0.0"]) {
      assert.ok(isAllowedHost(host), String(host));
    }
    for (const host of ["evil.example", "8.8.8.8:11434", "localhost.evil.example"]) {
      assert.ok(!isAllowedHost(host), host);
    }
    assert.ok(isLoopbackBind("127.0.0.1") && isLoopbackBind("::1") && isLoopbackBind("localhost"));
    assert.ok(!isLoopbackBind("0.0.0.0"));
  });
});
