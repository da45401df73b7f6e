// The HTTP server against a fake engine, driven by the official `ollama` and `openai` clients,
// unchanged: if they accept our shapes, so will their users.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import OpenAI from "openai";
import { OLLAMA_API_VERSION } from "../../src/server/ollama.js";
import { EMBEDDING_SIZE, FakeEngine, JSON_REPLY_TOKENS, PROMPT_TOKENS, REPLY_TEXT, REPLY_TOKENS } from "../helpers/fake-engine.js";
import { serveDuringSuite } from "../helpers/served.js";

const TOOLS = [
  {
    type: "function" as const,
    function: {
      name: "get_weather",
      description: "Weather of a city",
      parameters: { type: "object", properties: { query: { type: "string" } }, required: ["query"] },
    },
  },
];

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function norm(vector: number[]): number {
  return Math.hypot(...vector);
}

describe("server with the ollama client", () => {
  const served = serveDuringSuite(() => new FakeEngine(), { origins: ["https://allowed.example"] });

  test("answers / and HEAD / like Ollama, with a request id", async () => {
    const res = await fetch(served.url);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "Ollama is running");
    assert.match(res.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    const head = await fetch(served.url, { method: "HEAD" });
    assert.equal(head.status, 200);
    const echoed = await fetch(served.url, { headers: { "X-Request-Id": "client-id-1" } });
    assert.equal(echoed.headers.get("x-request-id"), "client-id-1");
  });

  test("reports version, health and metrics", async () => {
    assert.deepEqual(await served.ollama.version(), { version: OLLAMA_API_VERSION, vllama_version: "0.0.0-fake" });
    const health = await fetch(`${served.url}/health`);
    const { host_memory: hostMemory, ...status } = await health.json();
    assert.deepEqual(status, {
      status: "ok", backend: "cpu", devices: [{ name: "CPU", description: "fake", type: "cpu", memoryFree: 1, memoryTotal: 1 }],
      version: "0.0.0-fake", models: ["fake-model:latest"], available_models: 2, full_queues: [], queue_full: false,
    });
    assert.ok(hostMemory.total > 0);
    const metrics = await fetch(`${served.url}/metrics`);
    assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain/);
    assert.match(await metrics.text(), /^vllm:num_requests_running\{model_name="fake-model"\} 0$/m);
  });

  test("lists, shows and reports running models", async () => {
    const { models } = await served.ollama.list();
    assert.deepEqual(
      models.map((m) => m.name),
      ["fake-model:latest", "fake-embed:latest"],
    );
    assert.equal(models[0]!.details.quantization_level, "Q8_0");
    const shown = await served.ollama.show({ model: "fake-model" });
    assert.deepEqual(shown.capabilities, ["completion", "tools"]);
    const ps = await served.ollama.ps();
    assert.equal(ps.models[0]!.name, "fake-model:latest");
  });

  test("generates without streaming", async () => {
    const res = await served.ollama.generate({ model: "fake-model", prompt: "hi", stream: false });
    assert.equal(res.response, REPLY_TEXT);
    assert.equal(res.done, true);
    assert.equal(res.done_reason, "stop");
    assert.equal(res.eval_count, REPLY_TOKENS.length);
    assert.equal(res.prompt_eval_count, PROMPT_TOKENS);
    assert.ok(Number.isInteger(res.total_duration));
  });

  test("streams a generation that ends with the done object", async () => {
    const stream = await served.ollama.generate({ model: "fake-model", prompt: "hi", stream: true, options: { num_predict: 2 } });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks.map((c) => c.response).join(""), REPLY_TOKENS.slice(0, 2).join(""));
    const last = chunks.at(-1)!;
    assert.equal(last.done, true);
    assert.equal(last.done_reason, "length");
    assert.deepEqual(last.context, [1, 2, 3]);
  });

  test("chats, streaming and not", async () => {
    const messages = [{ role: "user", content: "hello" }];
    const whole = await served.ollama.chat({ model: "fake-model", messages, stream: false });
    assert.equal(whole.message.role, "assistant");
    assert.equal(whole.message.content, REPLY_TEXT);
    const stream = await served.ollama.chat({ model: "fake-model", messages, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.message.content;
    assert.equal(text, REPLY_TEXT);
  });

  test("returns tool calls with object arguments", async () => {
    const res = await served.ollama.chat({
      model: "fake-model",
      messages: [{ role: "user", content: "weather in Paris?" }],
      tools: TOOLS,
      stream: false,
    });
    // `index` as Ollama numbers the calls of one answer (the fake once left it out; the engine never did).
    assert.deepEqual(res.message.tool_calls, [{ function: { index: 0, name: "get_weather", arguments: { query: "weather in Paris?" } } }]);
  });

  test("embeds with normalized vectors, and the legacy endpoint without", async () => {
    const res = await served.ollama.embed({ model: "fake-embed", input: ["a", "b"] });
    assert.equal(res.embeddings.length, 2);
    for (const vector of res.embeddings) {
      assert.equal(vector.length, EMBEDDING_SIZE);
      assert.ok(Math.abs(norm(vector) - 1) < 1e-9);
    }
    const legacy = await served.ollama.embeddings({ model: "fake-embed", prompt: "a" });
    assert.equal(legacy.embedding.length, EMBEDDING_SIZE);
    assert.ok(Math.abs(norm(legacy.embedding) - 1) > 1e-3);
  });

  test("pulls with streamed progress, and without", async () => {
    const stream = await served.ollama.pull({ model: "remote-model", stream: true });
    const statuses = [];
    for await (const progress of stream) statuses.push(progress.status);
    assert.equal(statuses[0], "pulling manifest");
    assert.equal(statuses.at(-1), "success");
    assert.ok(statuses.some((s) => s.startsWith("pulling ")));
    assert.ok((await served.ollama.list()).models.some((m) => m.name === "remote-model:latest"));
    assert.deepEqual(await served.ollama.pull({ model: "remote-model", stream: false }), { status: "success" });
  });

  test("ends a failing pull stream with an error line", async () => {
    const stream = await served.ollama.pull({ model: "no-such-model", stream: true });
    await assert.rejects(async () => {
      for await (const _ of stream);
    }, /pull model manifest: file does not exist/);
  });

  test("creates, copies and deletes models", async () => {
    const stream = await served.ollama.create({ model: "created", from: "fake-model", stream: true });
    const statuses = [];
    for await (const progress of stream) statuses.push(progress.status);
    assert.equal(statuses.at(-1), "success");
    assert.deepEqual((await served.ollama.show({ model: "created" })).capabilities, ["completion", "tools"]);

    await served.ollama.copy({ source: "created", destination: "copied" });
    assert.ok((await served.ollama.list()).models.some((m) => m.name === "copied:latest"));
    await served.ollama.delete({ model: "copied" });
    await assert.rejects(served.ollama.show({ model: "copied" }), (err: Error & { status_code?: number }) => {
      assert.equal(err.status_code, 404);
      assert.equal(err.message, "model 'copied' not found");
      return true;
    });
  });

  test("stores blobs and creates a model from them", async () => {
    const data = Buffer.from("GGUF fake weights");
    const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
    assert.equal((await fetch(`${served.url}/api/blobs/${digest}`, { method: "HEAD" })).status, 404);
    assert.equal((await fetch(`${served.url}/api/blobs/${digest}`, { method: "POST", body: data })).status, 201);
    assert.equal((await fetch(`${served.url}/api/blobs/${digest}`, { method: "POST", body: data })).status, 200);
    assert.equal((await fetch(`${served.url}/api/blobs/${digest}`, { method: "HEAD" })).status, 200);
    const wrong = await fetch(`${served.url}/api/blobs/${digest}`, { method: "POST", body: "other bytes" });
    assert.equal(wrong.status, 400);
    assert.deepEqual(await wrong.json(), { error: "digest mismatch" });
    // The client's CreateRequest type lacks `files`, so this one goes through fetch.
    const created = await fetch(`${served.url}/api/create`, {
      method: "POST",
      body: JSON.stringify({ model: "from-files", files: { "model.gguf": digest }, stream: false }),
    });
    assert.deepEqual(await created.json(), { status: "success" });
    assert.equal((await served.ollama.show({ model: "from-files" })).modelfile, "FROM from-files:latest\n");
  });

  test("tokenizes and detokenizes", async () => {
    const post = (path: string, body: object) =>
      fetch(`${served.url}${path}`, { method: "POST", body: JSON.stringify(body) }).then((r) => r.json());
    const { tokens } = await post("/api/tokenize", { model: "fake-model", content: "héllo" });
    assert.deepEqual(tokens, [...Buffer.from("héllo")]);
    assert.deepEqual(await post("/api/detokenize", { model: "fake-model", tokens }), { content: "héllo" });
  });

  test("ends a stream that fails after output with one error line, status 200", async () => {
    served.engine.failAfterTokens = 2;
    try {
      const res = await fetch(`${served.url}/api/generate`, { method: "POST", body: JSON.stringify({ model: "fake-model", prompt: "x" }) });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "application/x-ndjson");
      const lines = (await res.text()).trim().split("\n").map((line) => JSON.parse(line));
      assert.equal(lines.length, 3);
      assert.deepEqual(lines.at(-1), { error: "llama runner process has terminated" });
    } finally {
      served.engine.failAfterTokens = undefined;
    }
  });

  test("aborts the engine call when the client goes away mid-stream", async () => {
    served.engine.tokenDelayMs = 50;
    try {
      const abortsBefore = served.engine.aborts.length;
      const stream = await served.ollama.generate({ model: "fake-model", prompt: "hi", stream: true });
      for await (const _ of stream) {
        stream.abort();
        break;
      }
      await waitFor(() => served.engine.aborts.length > abortsBefore);
      assert.match(String(served.engine.aborts.at(-1)), /client disconnected/);
      // The slot was released: the server still serves.
      assert.equal((await served.ollama.generate({ model: "fake-model", prompt: "hi", stream: false })).done, true);
    } finally {
      served.engine.tokenDelayMs = 0;
    }
  });

  test("applies CORS to allowed origins and refuses others", async () => {
    const preflight = await fetch(`${served.url}/api/chat`, {
      method: "OPTIONS",
      headers: {
        Origin: "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-stainless-os",
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "http://localhost:3000");
    assert.equal(preflight.headers.get("access-control-allow-headers"), "content-type, x-stainless-os");
    const configured = await fetch(`${served.url}/api/version`, { headers: { Origin: "https://allowed.example" } });
    assert.equal(configured.headers.get("access-control-allow-origin"), "https://allowed.example");
    const refused = await fetch(`${served.url}/api/version`, { headers: { Origin: "https://evil.example" } });
    assert.equal(refused.status, 403);
  });
});

describe("server with the openai client", () => {
  const served = serveDuringSuite(() => new FakeEngine());


  test("completes a chat with usage", async () => {
    const res = await served.openai.chat.completions.create({ model: "fake-model", messages: [{ role: "user", content: "hi" }] });
    assert.match(res.id, /^chatcmpl-/);
    assert.equal(res.object, "chat.completion");
    assert.equal(res.system_fingerprint, "fp_vllama");
    assert.equal(res.choices[0]!.message.content, REPLY_TEXT);
    assert.equal(res.choices[0]!.finish_reason, "stop");
    assert.deepEqual(res.usage, {
      prompt_tokens: PROMPT_TOKENS,
      completion_tokens: REPLY_TOKENS.length,
      total_tokens: PROMPT_TOKENS + REPLY_TOKENS.length,
    });
  });

  test("translates sampling fields and response_format into the native request", async () => {
    const schema = { type: "object", properties: { reply: { type: "string" } } };
    const res = await served.openai.chat.completions.create({
      model: "fake-model",
      messages: [
        { role: "developer", content: "be brief" },
        { role: "user", content: [{ type: "text", text: "hi" }] },
      ],
      max_tokens: 2,
      temperature: 0.2,
      stop: "END",
      seed: 7,
      response_format: { type: "json_schema", json_schema: { name: "reply", schema } },
    });
    assert.equal(res.choices[0]!.finish_reason, "length");
    assert.equal(res.choices[0]!.message.content, JSON_REPLY_TOKENS.slice(0, 2).join(""));
    const native = served.engine.lastChatRequest();
    assert.deepEqual(native.options, { temperature: 0.2, top_p: 1, num_predict: 2, seed: 7, stop: ["END"] });
    assert.deepEqual(native.format, schema);
    assert.deepEqual(native.messages, [
      { role: "system", content: "be brief" },
      { role: "user", content: "hi" },
    ]);
  });

  test("applies every engine sampling field, and maps reasoning_effort to think", async () => {
    const extra = { top_k: -1, min_p: 0.05, repetition_penalty: 1.1, logit_bias: { "7": -100 }, frequency_penalty: 0.5, presence_penalty: 0.25, min_tokens: 2 };
    const body = { model: "fake-model", messages: [{ role: "user" as const, content: "hi" }], seed: 3, ...extra };
    await served.openai.chat.completions.create(body);
    assert.deepEqual(served.engine.lastChatRequest().options, {
      temperature: 1, top_p: 1, seed: 3, top_k: 0, min_p: 0.05, repeat_penalty: 1.1, logit_bias: { "7": -100 }, frequency_penalty: 0.5, presence_penalty: 0.25,
      min_tokens: 2,
    });
    const thinkByEffort = { none: false, minimal: false, low: "low", medium: "medium", high: "high" } as const;
    for (const [effort, think] of Object.entries(thinkByEffort)) {
      await served.openai.chat.completions.create({ model: "fake-model", messages: [{ role: "user", content: "hi" }], reasoning_effort: effort as "low" });
      assert.equal(served.engine.lastChatRequest().think, think, effort);
    }
  });

  test("streams a chat: role first, finish chunk, usage chunk, [DONE]", async () => {
    const stream = await served.openai.chat.completions.create({
      model: "fake-model",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks[0]!.choices[0]!.delta.role, "assistant");
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    assert.equal(text, REPLY_TEXT);
    const finish = chunks.at(-2)!;
    assert.deepEqual(finish.choices[0]!.delta, {});
    assert.equal(finish.choices[0]!.finish_reason, "stop");
    const usage = chunks.at(-1)!;
    assert.deepEqual(usage.choices, []);
    assert.equal(usage.usage?.completion_tokens, REPLY_TOKENS.length);
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
    assert.ok(chunks.every((c) => c.id === chunks[0]!.id));
  });

  test("sends [DONE] after the last chunk", async () => {
    const res = await fetch(`${served.openai.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: "fake-model", messages: [{ role: "user", content: "hi" }], stream: true }),
    });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const body = await res.text();
    assert.ok(body.endsWith("data: [DONE]\n\n"));
    assert.ok(body.split("\n\n").filter(Boolean).every((event) => event.startsWith("data: ")));
  });

  test("returns tool calls with string arguments and resolves tool results by call id", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "weather in Paris?" }];
    const res = await served.openai.chat.completions.create({ model: "fake-model", messages, tools: TOOLS });
    const choice = res.choices[0]!;
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.content, null);
    const call = choice.message.tool_calls![0]!;
    assert.equal(call.type, "function");
    assert.match(call.id, /^call_/);
    assert.ok(call.type === "function");
    assert.equal(call.function.name, "get_weather");
    assert.deepEqual(JSON.parse(call.function.arguments), { query: "weather in Paris?" });

    const followUp = await served.openai.chat.completions.create({
      model: "fake-model",
      tools: TOOLS,
      messages: [...messages, choice.message, { role: "tool", tool_call_id: call.id, content: "sunny" }],
    });
    assert.equal(followUp.choices[0]!.message.content, REPLY_TEXT);
    const native = served.engine.lastChatRequest();
    assert.deepEqual(native.messages[1]!.tool_calls, [
      { function: { name: "get_weather", arguments: { query: "weather in Paris?" } } },
    ]);
    assert.equal(native.messages[2]!.tool_name, "get_weather");
  });

  test("streams tool calls as deltas", async () => {
    const stream = await served.openai.chat.completions.create({
      model: "fake-model",
      messages: [{ role: "user", content: "weather?" }],
      tools: TOOLS,
      stream: true,
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.index, 0);
    assert.equal(calls[0]!.function?.arguments, JSON.stringify({ query: "weather?" }));
    assert.equal(chunks.at(-1)!.choices[0]!.finish_reason, "tool_calls");
  });

  test("returns logprobs", async () => {
    const res = await served.openai.chat.completions.create({
      model: "fake-model",
      messages: [{ role: "user", content: "hi" }],
      logprobs: true,
      top_logprobs: 2,
    });
    const content = res.choices[0]!.logprobs!.content!;
    assert.equal(content.length, REPLY_TOKENS.length);
    assert.equal(content[0]!.token, REPLY_TOKENS[0]);
    assert.deepEqual(content[0]!.bytes, [...Buffer.from(REPLY_TOKENS[0]!)]);
    assert.equal(content[0]!.top_logprobs.length, 2);
  });

  test("completes text, streaming and not, with echo", async () => {
    const res = await served.openai.completions.create({ model: "fake-model", prompt: "Say: ", echo: true, max_tokens: 3 });
    assert.match(res.id, /^cmpl-/);
    assert.equal(res.object, "text_completion");
    assert.equal(res.choices[0]!.text, `Say: ${REPLY_TOKENS.slice(0, 3).join("")}`);
    assert.equal(res.choices[0]!.finish_reason, "length");
    assert.equal(res.usage?.completion_tokens, 3);

    const stream = await served.openai.completions.create({ model: "fake-model", prompt: "Say: ", stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks.map((c) => c.choices[0]!.text).join(""), REPLY_TEXT);
    assert.equal(chunks.at(-1)!.choices[0]!.finish_reason, "stop");
  });

  test("returns legacy completion logprobs with text offsets", async () => {
    const res = await served.openai.completions.create({ model: "fake-model", prompt: "x", logprobs: 1, max_tokens: 2 });
    const logprobs = res.choices[0]!.logprobs!;
    assert.deepEqual(logprobs.tokens, REPLY_TOKENS.slice(0, 2));
    assert.deepEqual(logprobs.text_offset, [0, REPLY_TOKENS[0]!.length]);
  });

  test("retrieves a model whose name has slashes", async () => {
    const copied = await fetch(`${served.openai.baseURL.replace(/\/v1$/, "")}/api/copy`, {
      method: "POST",
      body: JSON.stringify({ source: "fake-model", destination: "hf.co/user/repo:q4_k_m" }),
    });
    assert.equal(copied.status, 200);
    assert.equal((await served.openai.models.retrieve("hf.co/user/repo:q4_k_m")).id, "hf.co/user/repo:q4_k_m");
    const plain = await fetch(`${served.openai.baseURL}/models/hf.co/user/repo:q4_k_m`);
    assert.equal(((await plain.json()) as { id: string }).id, "hf.co/user/repo:q4_k_m");
  });

  test("lists and retrieves models", async () => {
    const list = await served.openai.models.list();
    const ids = list.data.map((m) => m.id);
    assert.ok(ids.includes("fake-model:latest") && ids.includes("fake-embed:latest"));
    assert.ok(list.data.every((m) => m.object === "model" && m.owned_by === "library"));
    const model = await served.openai.models.retrieve("fake-model:latest");
    assert.equal(model.id, "fake-model:latest");
    assert.equal(model.created, Date.parse("2025-01-02T03:04:05.000Z") / 1000);
    await assert.rejects(served.openai.models.retrieve("nope"), (err: InstanceType<typeof OpenAI.APIError>) => {
      assert.equal(err.status, 404);
      assert.equal(err.type, "not_found_error");
      return true;
    });
  });

  test("embeds as floats and as base64", async () => {
    const floats = await served.openai.embeddings.create({ model: "fake-embed", input: ["a", "b"], encoding_format: "float" });
    assert.equal(floats.data.length, 2);
    assert.equal(floats.data[1]!.index, 1);
    // Without an encoding_format the client asks for base64 and decodes it.
    const decoded = await served.openai.embeddings.create({ model: "fake-embed", input: ["a", "b"] });
    floats.data.forEach((item, i) => {
      const vector = decoded.data[i]!.embedding;
      item.embedding.forEach((v, j) => assert.ok(Math.abs(v - vector[j]!) < 1e-6));
    });
    assert.deepEqual(floats.usage, { prompt_tokens: 2, total_tokens: 2 });
  });

  test("ends a failing SSE stream with an error event the client raises", async () => {
    served.engine.failAfterTokens = 1;
    try {
      const stream = await served.openai.chat.completions.create({
        model: "fake-model",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      });
      await assert.rejects(async () => {
        for await (const _ of stream);
      }, /llama runner process has terminated/);
    } finally {
      served.engine.failAfterTokens = undefined;
    }
  });

  test("aborts the engine call when a streaming client disconnects", async () => {
    served.engine.tokenDelayMs = 50;
    try {
      const abortsBefore = served.engine.aborts.length;
      const stream = await served.openai.chat.completions.create({
        model: "fake-model",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      });
      for await (const _ of stream) {
        stream.controller.abort();
        break;
      }
      await waitFor(() => served.engine.aborts.length > abortsBefore);
    } finally {
      served.engine.tokenDelayMs = 0;
    }
  });
});
