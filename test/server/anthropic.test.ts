// Anthropic's Messages API: against the fake engine (translation, shapes, bad input, errors) and
// the real engine (stories260K's greedy reference, a forced tool call on the demo model), driven
// by the official @anthropic-ai/sdk client, unchanged.
import assert from "node:assert/strict";
import { request } from "node:http";
import { before, describe, test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import { MessageSchema, MessageStreamEventSchema, type MessageStreamEvent } from "../../src/api/anthropic.js";
import type { ChatRequest } from "../../src/api/ollama.js";
import { BUILTIN_MODEL } from "../../src/models/builtin.js";
import { FakeEngine, PROMPT_TOKENS, REPLY_TEXT, REPLY_TOKENS } from "../helpers/fake-engine.js";
import { REFERENCE_PROMPT, REFERENCE_TEXT } from "../helpers/models.js";
import { createStoriesChat, engineWithBuiltinModel } from "../helpers/real-server.js";
import { serveDuringSuite, startBadRequests } from "../helpers/served.js";
import { parseNamedEvents } from "../helpers/sse.js";

const WEATHER_TOOL = {
  name: "get_weather",
  description: "Weather of a city",
  input_schema: { type: "object" as const, properties: { query: { type: "string" } }, required: ["query"] },
};

/** Sampling fields the SDK's types no longer list (deprecated), still part of the API. */
function sampling(fields: { temperature?: number; top_p?: number; top_k?: number }): object {
  return fields;
}

function post(url: string, body: unknown, headers: Record<string, string> = {}, path = "/v1/messages"): Promise<Response> {
  return fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** The SSE events of a raw stream, each checked against the event schema. */
function parseEvents(text: string): MessageStreamEvent[] {
  return parseNamedEvents(text, MessageStreamEventSchema);
}

/** Every field of @anthropic-ai/sdk's Message type, and only those. */
const MESSAGE_FIELDS = ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "stop_details", "container", "diagnostics", "usage"];
const USAGE_FIELDS = [
  "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation",
  "inference_geo", "output_tokens_details", "server_tool_use", "service_tier", "speed",
];

describe("anthropic messages with the official client (fake engine)", () => {
  const served = serveDuringSuite(() => new FakeEngine(), { bodyLimit: "64kb" });


  test("creates a message with Anthropic's fields, every one of them", async () => {
    const message = await served.anthropic.messages.create({ model: "fake-model", max_tokens: 64, messages: [{ role: "user", content: "hi" }] });
    assert.deepEqual(Object.keys(message).sort(), [...MESSAGE_FIELDS].sort());
    assert.deepEqual(Object.keys(message.usage).sort(), [...USAGE_FIELDS].sort());
    MessageSchema.parse(message);
    assert.match(message.id, /^msg_[0-9a-f]{24}$/);
    assert.equal(message.type, "message");
    assert.equal(message.role, "assistant");
    assert.equal(message.model, "fake-model");
    assert.deepEqual(message.content, [{ type: "text", text: REPLY_TEXT, citations: null }]);
    assert.equal(message.stop_reason, "end_turn");
    assert.equal(message.stop_sequence, null);
    assert.equal(message.usage.input_tokens, PROMPT_TOKENS);
    assert.equal(message.usage.output_tokens, REPLY_TOKENS.length);
    assert.equal(message.usage.cache_read_input_tokens, 0);
  });

  test("translates system, sampling, stop sequences and thinking into the native request", async () => {
    const message = await served.anthropic.messages.create({
      model: "fake-model",
      max_tokens: 2048,
      system: [{ type: "text", text: "be brief" }, { type: "text", text: "and kind" }],
      messages: [
        { role: "user", content: [{ type: "text", text: "hi" }] },
        { role: "assistant", content: [{ type: "thinking", thinking: "greet back", signature: "" }, { type: "text", text: "hello" }] },
        { role: "user", content: "again" },
      ],
      stop_sequences: ["END"],
      thinking: { type: "enabled", budget_tokens: 1024 },
      metadata: { user_id: "u1" },
      ...sampling({ temperature: 0.2, top_p: 0.5, top_k: 7 }),
    });
    assert.equal(message.stop_reason, "end_turn");
    const native = served.engine.lastChatRequest();
    assert.deepEqual(native.options, { temperature: 0.2, num_predict: 2048, top_p: 0.5, top_k: 7, stop: ["END"] });
    assert.equal(native.think, true);
    assert.deepEqual(native.messages, [
      { role: "system", content: "be brief\nand kind" },
      { role: "user", content: "hi" },
      { role: "assistant", content: "hello", thinking: "greet back" },
      { role: "user", content: "again" },
    ]);
    const short = await served.anthropic.messages.create({ model: "fake-model", max_tokens: 2, messages: [{ role: "user", content: "hi" }], thinking: { type: "disabled" } });
    assert.equal(short.stop_reason, "max_tokens");
    assert.deepEqual(short.content, [{ type: "text", text: REPLY_TOKENS.slice(0, 2).join(""), citations: null }]);
    assert.equal(served.engine.lastChatRequest().think, false);
    assert.deepEqual(served.engine.lastChatRequest().options, { temperature: 1, num_predict: 2 });
  });

  test("streams Anthropic's events in order, and the SDK's accumulated message matches", async () => {
    const res = await post(served.url, { model: "fake-model", max_tokens: 64, stream: true, messages: [{ role: "user", content: "hi" }] });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const events = parseEvents(await res.text());
    const types = events.map((e) => e.type);
    assert.deepEqual(types, [
      "message_start", "ping", "content_block_start",
      ...REPLY_TOKENS.map(() => "content_block_delta"),
      "content_block_stop", "message_delta", "message_stop",
    ]);
    const start = events[0] as Extract<MessageStreamEvent, { type: "message_start" }>;
    assert.deepEqual(start.message.content, []);
    assert.equal(start.message.stop_reason, null);
    const delta = events.at(-2) as Extract<MessageStreamEvent, { type: "message_delta" }>;
    assert.equal(delta.delta.stop_reason, "end_turn");
    assert.equal(delta.usage.output_tokens, REPLY_TOKENS.length);
    assert.equal(delta.usage.input_tokens, PROMPT_TOKENS);

    const stream = served.anthropic.messages.stream({ model: "fake-model", max_tokens: 64, messages: [{ role: "user", content: "hi" }] });
    let text = "";
    stream.on("text", (piece) => (text += piece));
    const final = await stream.finalMessage();
    assert.equal(text, REPLY_TEXT);
    assert.deepEqual(final.content, [{ type: "text", text: REPLY_TEXT, citations: null }]);
    assert.equal(final.stop_reason, "end_turn");
    assert.equal(final.usage.input_tokens, PROMPT_TOKENS);
    assert.equal(final.usage.output_tokens, REPLY_TOKENS.length);
  });

  test("returns tool uses with ids and resolves tool results by id (round trip)", async () => {
    const messages: Anthropic.MessageParam[] = [{ role: "user", content: "weather in Paris?" }];
    const first = await served.anthropic.messages.create({ model: "fake-model", max_tokens: 64, tools: [WEATHER_TOOL], messages });
    assert.equal(first.stop_reason, "tool_use");
    assert.equal(first.content.length, 1);
    const use = first.content[0]!;
    assert.ok(use.type === "tool_use");
    assert.match(use.id, /^toolu_[0-9a-f]{24}$/);
    assert.equal(use.name, "get_weather");
    assert.deepEqual(use.input, { query: "weather in Paris?" });
    assert.deepEqual(served.engine.lastChatRequest().tools, [
      { type: "function", function: { name: "get_weather", parameters: WEATHER_TOOL.input_schema, description: "Weather of a city" } },
    ]);

    const second = await served.anthropic.messages.create({
      model: "fake-model",
      max_tokens: 64,
      tools: [WEATHER_TOOL],
      messages: [
        ...messages,
        { role: "assistant", content: first.content },
        { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: [{ type: "text", text: "sunny" }] }] },
      ],
    });
    assert.equal(second.stop_reason, "end_turn");
    assert.deepEqual(second.content, [{ type: "text", text: REPLY_TEXT, citations: null }]);
    const call = { role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { query: "weather in Paris?" } } }] };
    assert.deepEqual(served.engine.lastChatRequest().messages.slice(1), [call, { role: "tool", content: "sunny", tool_name: "get_weather" }]);

    // Text beside the results follows them as the user's own message.
    await served.anthropic.messages.create({
      model: "fake-model",
      max_tokens: 64,
      messages: [
        ...messages,
        { role: "assistant", content: first.content },
        { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "sunny" }, { type: "text", text: "thanks" }] },
      ],
    });
    assert.deepEqual(served.engine.lastChatRequest().messages.slice(1), [
      call,
      { role: "tool", content: "sunny", tool_name: "get_weather" },
      { role: "user", content: "thanks" },
    ]);
  });

  test("streams a tool use as one input_json_delta", async () => {
    const stream = served.anthropic.messages.stream({ model: "fake-model", max_tokens: 64, tools: [WEATHER_TOOL], messages: [{ role: "user", content: "weather?" }] });
    const events: Anthropic.MessageStreamEvent[] = [];
    stream.on("streamEvent", (event) => events.push(event));
    const final = await stream.finalMessage();
    const json = events.flatMap((e) => (e.type === "content_block_delta" && e.delta.type === "input_json_delta" ? [e.delta.partial_json] : []));
    assert.deepEqual(json, [JSON.stringify({ query: "weather?" })]);
    assert.equal(final.stop_reason, "tool_use");
    const use = final.content.find((b) => b.type === "tool_use");
    assert.ok(use?.type === "tool_use");
    assert.deepEqual(use.input, { query: "weather?" });
  });

  test("maps tool_choice: none withholds the tools, tool and any force a call (the engine's tool_choice, not a format)", async () => {
    const other = { ...WEATHER_TOOL, name: "get_time", description: "Time in a city" };
    const ask = (tool_choice: Anthropic.ToolChoice) =>
      served.anthropic.messages.create({ model: "fake-model", max_tokens: 64, tools: [WEATHER_TOOL, other], tool_choice, messages: [{ role: "user", content: "hi" }] });

    const none = await ask({ type: "none" });
    assert.equal(none.stop_reason, "end_turn");
    assert.equal(served.engine.lastChatRequest().tools, undefined);
    assert.equal(served.engine.lastChatRequest().format, undefined);
    assert.equal(served.engine.lastChatRequest().tool_choice, undefined);

    await ask({ type: "tool", name: "get_time" });
    assert.deepEqual(served.engine.lastChatRequest().tool_choice, { type: "function", function: { name: "get_time" } });
    assert.equal(served.engine.lastChatRequest().format, undefined);
    assert.equal(served.engine.lastChatRequest().tools?.length, 2);
    // A forced call leaves no room for thinking.
    assert.equal(served.engine.lastChatRequest().think, false);

    await ask({ type: "any" });
    assert.equal(served.engine.lastChatRequest().tool_choice, "required");
    await ask({ type: "auto" });
    assert.equal(served.engine.lastChatRequest().tool_choice, undefined);
    assert.equal(served.engine.lastChatRequest().format, undefined);
  });

  test("reports the stop sequence that ended the answer, whole and streamed", async () => {
    const params = { model: "fake-model", max_tokens: 64, stop_sequences: ["END", " the"], messages: [{ role: "user" as const, content: "hi" }] };
    const message = await served.anthropic.messages.create(params);
    assert.deepEqual(message.content, [{ type: "text", text: "Hello from", citations: null }]);
    assert.equal(message.stop_reason, "stop_sequence");
    assert.equal(message.stop_sequence, " the");
    const res = await post(served.url, { ...params, stream: true });
    const delta = parseEvents(await res.text()).find((e) => e.type === "message_delta");
    assert.ok(delta?.type === "message_delta");
    assert.equal(delta.delta.stop_reason, "stop_sequence");
    assert.equal(delta.delta.stop_sequence, " the");
  });

  test("counts the tokens of a request's prompt: system, messages and tools", async () => {
    const count = await served.anthropic.messages.countTokens({
      model: "fake-model",
      system: "be brief",
      messages: [{ role: "user", content: "hi" }],
      tools: [WEATHER_TOOL],
    });
    assert.deepEqual(count, { input_tokens: "be brief".length + "hi".length });
    const last = served.engine.requests.at(-1)!;
    assert.equal(last.kind, "tokenizeChat");
    const native = last.request as ChatRequest;
    assert.deepEqual(native.messages, [{ role: "system", content: "be brief" }, { role: "user", content: "hi" }]);
    assert.equal(native.tools?.[0]?.function.name, "get_weather");
    await assert.rejects(served.anthropic.messages.countTokens({ model: "nope", messages: [{ role: "user", content: "hi" }] }), (err: InstanceType<typeof Anthropic.APIError>) => {
      assert.ok(err instanceof Anthropic.NotFoundError);
      assert.equal(err.type, "not_found_error");
      return true;
    });
  });

  test("passes output_config.format as the native format", async () => {
    const schema = { type: "object", properties: { reply: { type: "string" } } };
    await served.anthropic.messages.create({
      model: "fake-model", max_tokens: 8, messages: [{ role: "user", content: "hi" }],
      output_config: { format: { type: "json_schema", schema } },
    });
    assert.deepEqual(served.engine.lastChatRequest().format, schema);
  });

  test("raises the SDK's typed errors from Anthropic-shaped error bodies", async () => {
    await assert.rejects(
      served.anthropic.messages.create({ model: "nope", max_tokens: 8, messages: [{ role: "user", content: "hi" }] }),
      (err: InstanceType<typeof Anthropic.APIError>) => {
        assert.ok(err instanceof Anthropic.NotFoundError);
        assert.equal(err.type, "not_found_error");
        assert.deepEqual(err.error, { type: "error", error: { type: "not_found_error", message: "model 'nope' not found" } });
        return true;
      },
    );
    await assert.rejects(
      served.anthropic.messages.create({ model: "fake-model", max_tokens: 0, messages: [{ role: "user", content: "hi" }] }),
      (err: InstanceType<typeof Anthropic.APIError>) => err instanceof Anthropic.BadRequestError && err.type === "invalid_request_error",
    );
  });

  test("ends a stream that fails after output with an error event the SDK raises", async () => {
    served.engine.failAfterTokens = 2;
    try {
      const res = await post(served.url, { model: "fake-model", max_tokens: 64, stream: true, messages: [{ role: "user", content: "hi" }] });
      const frames = (await res.text()).split("\n\n").filter(Boolean);
      assert.equal(frames.at(-1), `event: error\ndata: ${JSON.stringify({ type: "error", error: { type: "api_error", message: "llama runner process has terminated" } })}`);
      const stream = served.anthropic.messages.stream({ model: "fake-model", max_tokens: 64, messages: [{ role: "user", content: "hi" }] });
      await assert.rejects(stream.finalMessage(), /llama runner process has terminated/);
    } finally {
      served.engine.failAfterTokens = undefined;
    }
  });

  test("accepts x-api-key and the anthropic-* headers, also from browsers", async () => {
    const res = await post(served.url, { model: "fake-model", max_tokens: 8, messages: [{ role: "user", content: "hi" }] }, { "x-api-key": "k", "anthropic-version": "2023-06-01" });
    assert.equal(res.status, 200);
    const preflight = await fetch(`${served.url}/v1/messages`, {
      method: "OPTIONS",
      headers: {
        Origin: "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-api-key, anthropic-version, anthropic-dangerous-direct-browser-access",
      },
    });
    assert.equal(preflight.status, 204);
  });

  test("counts tokens while a bad count request is in flight", async () => {
    const stalled = request({ host: "127.0.0.1", port: served.server.port, method: "POST", path: "/v1/messages/count_tokens", headers: { "Content-Length": "1000" } });
    stalled.on("error", () => undefined);
    stalled.write('{"model": "fake-model", "mess');
    try {
      const count = await served.anthropic.messages.countTokens({ model: "fake-model", messages: [{ role: "user", content: "hi" }] });
      assert.equal(count.input_tokens, 2);
    } finally {
      stalled.destroy();
    }
  });

  test("serves an unrelated request while a bad one is in flight", async () => {
    const streamBody = { model: "fake-model", max_tokens: 64, stream: true, messages: [{ role: "user", content: "hi" }] };
    const { stalled, failing: failingResponse } = await startBadRequests(served, "/v1/messages", '{"model": "fake-model", "max_tokens": 8, "mess', streamBody);
    try {
      const message = await served.anthropic.messages.create({ model: "fake-model", max_tokens: 64, messages: [{ role: "user", content: "hi" }] });
      assert.equal(message.content[0]!.type === "text" && message.content[0]!.text, REPLY_TEXT);
      const frames = (await failingResponse.text()).split("\n\n").filter(Boolean);
      assert.match(frames.at(-1)!, /^event: error\n/);
    } finally {
      stalled.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input: status and Anthropic's error body for each

const TOOL_USE = { type: "tool_use", id: "toolu_1", name: "get_weather", input: { query: "x" } };

function messages(fields: Record<string, unknown>): Record<string, unknown> {
  return { model: "fake-model", max_tokens: 8, messages: [{ role: "user", content: "hi" }], ...fields };
}

interface BadCase {
  name: string;
  /** Default /v1/messages. */
  path?: string;
  body: unknown;
  status: number;
  type: string;
  error: RegExp;
  setup?: (engine: FakeEngine) => () => void;
}

const BAD_CASES: BadCase[] = [
  { name: "malformed JSON", body: "{", status: 400, type: "invalid_request_error", error: /^invalid JSON body/ },
  { name: "body too large", body: messages({ system: "x".repeat(70_000) }), status: 413, type: "request_too_large", error: /too large/ },
  { name: "missing max_tokens", body: { model: "fake-model", messages: [{ role: "user", content: "hi" }] }, status: 400, type: "invalid_request_error", error: /^max_tokens is required$/ },
  { name: "max_tokens 0", body: messages({ max_tokens: 0 }), status: 400, type: "invalid_request_error", error: /^invalid max_tokens: must be >= 1$/ },
  { name: "missing model", body: { max_tokens: 8, messages: [{ role: "user", content: "hi" }] }, status: 400, type: "invalid_request_error", error: /^model is required$/ },
  { name: "empty messages", body: messages({ messages: [] }), status: 400, type: "invalid_request_error", error: /^invalid messages: must not be empty$/ },
  { name: "content not text or blocks", body: messages({ messages: [{ role: "user", content: 5 }] }), status: 400, type: "invalid_request_error", error: /^invalid messages\.0\.content: expected a string or an array of content blocks$/ },
  { name: "unknown block type", body: messages({ messages: [{ role: "user", content: [{ type: "document", source: {} }] }] }), status: 400, type: "invalid_request_error", error: /^invalid messages\.0\.content\.0\.type: expected a content block of type "text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"$/ },
  { name: "text block without text", body: messages({ messages: [{ role: "user", content: [{ type: "text" }] }] }), status: 400, type: "invalid_request_error", error: /^messages\.0\.content\.0\.text is required$/ },
  { name: "tool_use in a user message", body: messages({ messages: [{ role: "user", content: [TOOL_USE] }] }), status: 400, type: "invalid_request_error", error: /^invalid messages\.0\.content\.0: user messages cannot hold tool_use blocks$/ },
  { name: "tool_result in an assistant message", body: messages({ messages: [{ role: "assistant", content: [{ type: "tool_result", tool_use_id: "toolu_1" }] }] }), status: 400, type: "invalid_request_error", error: /^invalid messages\.0\.content\.0: assistant messages cannot hold tool_result blocks$/ },
  {
    name: "tool_result for an unknown tool_use id",
    body: messages({ messages: [{ role: "user", content: "hi" }, { role: "assistant", content: [TOOL_USE] }, { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_2", content: "sunny" }] }] }),
    status: 400, type: "invalid_request_error", error: /^invalid messages\.2\.content\.0\.tool_use_id: "toolu_2" answers no tool_use block of an earlier message$/,
  },
  { name: "tool_use input not an object", body: messages({ messages: [{ role: "assistant", content: [{ ...TOOL_USE, input: "x" }] }] }), status: 400, type: "invalid_request_error", error: /^invalid messages\.0\.content\.0\.input: expected record$/ },
  { name: "image by an ftp URL", body: messages({ messages: [{ role: "user", content: [{ type: "image", source: { type: "url", url: "ftp://example.com/a.png" } }] }] }), status: 400, type: "invalid_request_error", error: /^invalid image source: a url source needs an http or https URL$/ },
  { name: "server tool", body: messages({ tools: [{ type: "web_search_20250305", name: "web_search" }] }), status: 400, type: "invalid_request_error", error: /^invalid tools\.0\.type: only custom tools are supported/ },
  { name: "tool without input_schema", body: messages({ tools: [{ name: "f" }] }), status: 400, type: "invalid_request_error", error: /^tools\.0\.input_schema is required$/ },
  { name: "tool_choice names an unknown tool", body: messages({ tools: [WEATHER_TOOL], tool_choice: { type: "tool", name: "get_time" } }), status: 400, type: "invalid_request_error", error: /^invalid tool_choice\.name: no tool named "get_time"$/ },
  { name: "tool_choice any without tools", body: messages({ tool_choice: { type: "any" } }), status: 400, type: "invalid_request_error", error: /^invalid tool_choice: "any" needs tools$/ },
  { name: "unknown tool_choice", body: messages({ tool_choice: { type: "required" } }), status: 400, type: "invalid_request_error", error: /^invalid tool_choice\.type: expected a tool_choice of type "auto", "any", "tool" or "none"$/ },
  { name: "thinking budget under 1024", body: messages({ max_tokens: 4096, thinking: { type: "enabled", budget_tokens: 100 } }), status: 400, type: "invalid_request_error", error: /^invalid thinking\.budget_tokens: must be >= 1024$/ },
  { name: "thinking budget not under max_tokens", body: messages({ max_tokens: 2048, thinking: { type: "enabled", budget_tokens: 2048 } }), status: 400, type: "invalid_request_error", error: /max_tokens. must be greater than .thinking\.budget_tokens/ },
  { name: "thinking with a forced tool", body: messages({ max_tokens: 4096, thinking: { type: "enabled", budget_tokens: 1024 }, tools: [WEATHER_TOOL], tool_choice: { type: "any" } }), status: 400, type: "invalid_request_error", error: /^Thinking may not be enabled when tool_choice forces tool use\.$/ },
  { name: "output format schema not an object", body: messages({ output_config: { format: { type: "json_schema", schema: "string" } } }), status: 400, type: "invalid_request_error", error: /^invalid output_config\.format\.schema: expected record$/ },
  { name: "temperature above 1", body: messages({ temperature: 1.5 }), status: 400, type: "invalid_request_error", error: /^invalid temperature: must be <= 1$/ },
  { name: "stop_sequences not strings", body: messages({ stop_sequences: [1] }), status: 400, type: "invalid_request_error", error: /^invalid stop_sequences\.0: expected string$/ },
  { name: "unknown model", body: messages({ model: "nope" }), status: 404, type: "not_found_error", error: /^model 'nope' not found$/ },
  { name: "model without completion", body: messages({ model: "fake-embed" }), status: 400, type: "invalid_request_error", error: /does not support generate/ },
  { name: "count_tokens: missing messages", path: "/v1/messages/count_tokens", body: { model: "fake-model" }, status: 400, type: "invalid_request_error", error: /^messages is required$/ },
  { name: "count_tokens: unknown block type", path: "/v1/messages/count_tokens", body: { model: "fake-model", messages: [{ role: "user", content: [{ type: "video" }] }] }, status: 400, type: "invalid_request_error", error: /^invalid messages\.0\.content\.0\.type: expected a content block of type/ },
  { name: "count_tokens: unknown tool_use id", path: "/v1/messages/count_tokens", body: { model: "fake-model", messages: [{ role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_9" }] }] }, status: 400, type: "invalid_request_error", error: /^invalid messages\.0\.content\.0\.tool_use_id: "toolu_9" answers no tool_use block/ },
  { name: "count_tokens: unknown model", path: "/v1/messages/count_tokens", body: { model: "nope", messages: [{ role: "user", content: "hi" }] }, status: 404, type: "not_found_error", error: /^model 'nope' not found$/ },
  {
    name: "busy (Anthropic's 529 overloaded)",
    body: messages({ stream: true }),
    status: 529, type: "overloaded_error", error: /^server busy/,
    setup: (engine) => {
      engine.maxPending = 0;
      return () => (engine.maxPending = Infinity);
    },
  },
];

describe("anthropic messages: bad input", () => {
  const served = serveDuringSuite(() => new FakeEngine(), { bodyLimit: "64kb" });

  for (const c of BAD_CASES) {
    test(`${c.name} -> ${c.status}`, async () => {
      const undo = c.setup?.(served.engine);
      try {
        const res = await post(served.url, c.body, {}, c.path);
        const text = await res.text();
        assert.equal(res.status, c.status, text);
        assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
        const body = JSON.parse(text);
        assert.deepEqual(Object.keys(body), ["type", "error"]);
        assert.equal(body.type, "error");
        assert.deepEqual(Object.keys(body.error), ["type", "message"]);
        assert.equal(body.error.type, c.type);
        assert.match(body.error.message, c.error);
      } finally {
        undo?.();
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// The real engine

describe("anthropic messages on the real engine", () => {
  const served = serveDuringSuite(() => engineWithBuiltinModel("anthropic"), { bodyLimit: "64kb" });
  before(() => createStoriesChat(served.url));

  test("returns stories260K's greedy reference text, whole and streamed", async () => {
    const params = { model: "stories-chat", max_tokens: 48, ...sampling({ temperature: 0 }), messages: [{ role: "user" as const, content: REFERENCE_PROMPT }] };
    const message = await served.anthropic.messages.create(params);
    assert.deepEqual(message.content, [{ type: "text", text: REFERENCE_TEXT, citations: null }]);
    assert.equal(message.stop_reason, "max_tokens");
    assert.equal(message.usage.output_tokens, 48);
    const stream = served.anthropic.messages.stream(params);
    let text = "";
    stream.on("text", (piece) => (text += piece));
    const final = await stream.finalMessage();
    assert.equal(text, REFERENCE_TEXT);
    assert.equal(final.usage.output_tokens, 48);
    assert.equal(final.usage.input_tokens, message.usage.input_tokens);
  });

  test("counts exactly the prompt tokens a message is given, and stops at a stop sequence", async () => {
    const ask = { model: "stories-chat", system: "unused by this template", messages: [{ role: "user" as const, content: REFERENCE_PROMPT }] };
    const count = await served.anthropic.messages.countTokens(ask);
    // "e gi" spans the tokens of "little" and " girl" in the reference text.
    const message = await served.anthropic.messages.create({ ...ask, max_tokens: 48, stop_sequences: ["e gi"], ...sampling({ temperature: 0 }) });
    assert.equal(count.input_tokens, message.usage.input_tokens);
    assert.deepEqual(message.content, [{ type: "text", text: ", there was a littl", citations: null }]);
    assert.equal(message.stop_reason, "stop_sequence");
    assert.equal(message.stop_sequence, "e gi");
  });

  test("forces a tool call with tool_choice, and takes its result back (demo model)", async () => {
    const tool = { name: "get_weather", input_schema: { type: "object" as const, properties: { city: { enum: ["Paris", "Rome"] } }, required: ["city"] } };
    const ask: Anthropic.MessageParam[] = [{ role: "user", content: "Weather in Paris?" }];
    const first = await served.anthropic.messages.create({ model: BUILTIN_MODEL, max_tokens: 64, ...sampling({ temperature: 0 }), tools: [tool], tool_choice: { type: "tool", name: "get_weather" }, messages: ask });
    assert.equal(first.stop_reason, "tool_use");
    const use = first.content.find((b) => b.type === "tool_use");
    assert.ok(use?.type === "tool_use", JSON.stringify(first.content));
    assert.equal(use.name, "get_weather");
    assert.ok(["Paris", "Rome"].includes((use.input as { city: string }).city));
    const second = await served.anthropic.messages.create({
      model: BUILTIN_MODEL, max_tokens: 4, tools: [tool],
      messages: [...ask, { role: "assistant", content: first.content }, { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "sunny" }] }],
    });
    assert.equal(second.usage.output_tokens, 4);
    assert.ok(second.usage.input_tokens > first.usage.input_tokens);
  });

  test("refuses a JSON schema the grammar cannot take, with Anthropic's 400", async () => {
    const res = await post(served.url, { model: "stories-chat", max_tokens: 8, messages: [{ role: "user", content: "x" }], output_config: { format: { type: "json_schema", schema: { type: "object", properties: { a: { $ref: "#/nowhere" } } } } } });
    const body = await res.json();
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(body.error.type, "invalid_request_error");
    assert.match(body.error.message, /^invalid format: /);
  });
});
