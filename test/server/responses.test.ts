// OpenAI's Responses API: against the fake engine (translation, shapes, bad input, errors) and the
// real engine (stories260K's greedy reference, a forced function call on the demo model), driven
// by the official `openai` client, unchanged.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import OpenAI from "openai";
import { ResponseSchema, ResponseStreamEventSchema, type ResponseStreamEvent } from "../../src/api/openai-responses.js";
import { BUILTIN_MODEL } from "../../src/models/builtin.js";
import { FakeEngine, JSON_REPLY_TOKENS, PROMPT_TOKENS, REPLY_TEXT, REPLY_TOKENS } from "../helpers/fake-engine.js";
import { REFERENCE_PROMPT, REFERENCE_TEXT } from "../helpers/models.js";
import { createStoriesChat, engineWithBuiltinModel } from "../helpers/real-server.js";
import { serveDuringSuite, startBadRequests } from "../helpers/served.js";
import { parseNamedEvents } from "../helpers/sse.js";

const WEATHER_TOOL = {
  type: "function" as const,
  name: "get_weather",
  description: "Weather of a city",
  parameters: { type: "object", properties: { query: { type: "string" } }, required: ["query"] },
  strict: false,
};

function post(url: string, body: unknown): Promise<Response> {
  return fetch(`${url}/v1/responses`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** The SSE events of a raw stream, each checked against the event schema, numbered in order. */
function parseEvents(text: string): ResponseStreamEvent[] {
  const events = parseNamedEvents(text, ResponseStreamEventSchema);
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
  return events;
}

/** The fields of the `openai` package's Response type: every required one, and which optional ones exist. */
const REQUIRED_FIELDS = ["id", "created_at", "error", "incomplete_details", "instructions", "metadata", "model", "object", "output", "parallel_tool_calls", "temperature", "tool_choice", "tools", "top_p"];
const OPTIONAL_FIELDS = [
  "background", "completed_at", "conversation", "max_output_tokens", "moderation", "previous_response_id", "prompt", "prompt_cache_key",
  "prompt_cache_options", "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "status", "text", "top_logprobs",
  "truncation", "usage", "user",
];

describe("responses with the official openai client (fake engine)", () => {
  const served = serveDuringSuite(() => new FakeEngine(), { bodyLimit: "64kb" });


  test("creates a response with the documented fields", async () => {
    const raw = await (await post(served.url, { model: "fake-model", input: "hi" })).json();
    for (const field of REQUIRED_FIELDS) assert.ok(field in raw, field);
    for (const field of Object.keys(raw)) assert.ok(REQUIRED_FIELDS.includes(field) || OPTIONAL_FIELDS.includes(field), field);
    ResponseSchema.parse(raw);

    const response = await served.openai.responses.create({ model: "fake-model", input: "hi" });
    assert.match(response.id, /^resp_[0-9a-f]{24}$/);
    assert.equal(response.object, "response");
    assert.equal(response.status, "completed");
    assert.equal(response.output_text, REPLY_TEXT);
    assert.equal(response.output.length, 1);
    const message = response.output[0]!;
    assert.ok(message.type === "message");
    assert.match(message.id, /^msg_/);
    assert.equal(message.status, "completed");
    assert.deepEqual(message.content, [{ type: "output_text", text: REPLY_TEXT, annotations: [], logprobs: [] }]);
    assert.deepEqual(response.usage, {
      input_tokens: PROMPT_TOKENS,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: REPLY_TOKENS.length,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: PROMPT_TOKENS + REPLY_TOKENS.length,
    });
    assert.equal(response.error, null);
    assert.equal(response.tool_choice, "auto");
    assert.deepEqual(response.text, { format: { type: "text" } });
  });

  test("translates instructions, input items, sampling and reasoning into the native request", async () => {
    const response = await served.openai.responses.create({
      model: "fake-model",
      instructions: "be brief",
      input: [
        { role: "developer", content: "and kind" },
        { role: "user", content: [{ type: "input_text", text: "hi" }] },
        { type: "reasoning", id: "rs_1", summary: [{ type: "summary_text", text: "greet back" }] },
        { type: "message", role: "assistant", id: "msg_1", status: "completed", content: [{ type: "output_text", text: "hello", annotations: [] }] },
        { role: "user", content: "again" },
      ],
      max_output_tokens: 2,
      temperature: 0.2,
      top_p: 0.5,
      reasoning: { effort: "minimal" },
      metadata: { trace: "t1" },
    });
    assert.equal(response.status, "incomplete");
    assert.deepEqual(response.incomplete_details, { reason: "max_output_tokens" });
    assert.equal(response.output_text, REPLY_TOKENS.slice(0, 2).join(""));
    assert.deepEqual(response.metadata, { trace: "t1" });
    assert.deepEqual(response.reasoning, { effort: "minimal", summary: null });
    const native = served.engine.lastChatRequest();
    assert.deepEqual(native.options, { temperature: 0.2, top_p: 0.5, num_predict: 2 });
    assert.equal(native.think, "low");
    assert.deepEqual(native.messages, [
      { role: "system", content: "be brief" },
      { role: "system", content: "and kind" },
      { role: "user", content: "hi" },
      { role: "assistant", content: "hello", thinking: "greet back" },
      { role: "user", content: "again" },
    ]);
    await served.openai.responses.create({ model: "fake-model", input: "hi", reasoning: { effort: "none" } });
    assert.equal(served.engine.lastChatRequest().think, false);
    assert.deepEqual(served.engine.lastChatRequest().options, { temperature: 1, top_p: 1 });
  });

  test("constrains the answer with text.format json_schema", async () => {
    const schema = { type: "object", properties: { reply: { type: "string" } } };
    const response = await served.openai.responses.create({
      model: "fake-model",
      input: "hi",
      text: { format: { type: "json_schema", name: "reply", schema } },
    });
    assert.deepEqual(served.engine.lastChatRequest().format, schema);
    assert.equal(response.output_text, JSON_REPLY_TOKENS.join(""));
    assert.deepEqual(response.text?.format, { type: "json_schema", name: "reply", schema });
  });

  test("streams the documented events in order, and the SDK's stream helper accumulates them", async () => {
    const res = await post(served.url, { model: "fake-model", input: "hi", stream: true });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const events = parseEvents(await res.text());
    assert.deepEqual(events.map((e) => e.type), [
      "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
      ...REPLY_TOKENS.map(() => "response.output_text.delta"),
      "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
    ]);
    const created = events[0] as Extract<ResponseStreamEvent, { type: "response.created" }>;
    assert.equal(created.response.status, "in_progress");
    assert.deepEqual(created.response.output, []);
    const completed = events.at(-1) as Extract<ResponseStreamEvent, { type: "response.completed" }>;
    assert.equal(completed.response.id, created.response.id);
    assert.equal(completed.response.usage?.output_tokens, REPLY_TOKENS.length);

    const stream = served.openai.responses.stream({ model: "fake-model", input: "hi" });
    let text = "";
    stream.on("response.output_text.delta", (event) => (text += event.delta));
    const final = await stream.finalResponse();
    assert.equal(text, REPLY_TEXT);
    assert.equal(final.output_text, REPLY_TEXT);
    assert.equal(final.status, "completed");

    const plain = await served.openai.responses.create({ model: "fake-model", input: "hi", stream: true });
    const types = [];
    for await (const event of plain) types.push(event.type);
    assert.equal(types.at(-1), "response.completed");
  });

  test("returns function calls and resolves their outputs by call_id (round trip)", async () => {
    const input: OpenAI.Responses.ResponseInput = [{ role: "user", content: "weather in Paris?" }];
    const first = await served.openai.responses.create({ model: "fake-model", input, tools: [WEATHER_TOOL] });
    assert.equal(first.status, "completed");
    assert.equal(first.output.length, 1);
    const call = first.output[0]!;
    assert.ok(call.type === "function_call");
    assert.match(call.id!, /^fc_/);
    assert.match(call.call_id, /^call_/);
    assert.equal(call.name, "get_weather");
    assert.deepEqual(JSON.parse(call.arguments), { query: "weather in Paris?" });
    assert.deepEqual(first.tools, [{ ...WEATHER_TOOL }]);
    assert.deepEqual(served.engine.lastChatRequest().tools, [
      { type: "function", function: { name: "get_weather", description: "Weather of a city", parameters: WEATHER_TOOL.parameters } },
    ]);

    const second = await served.openai.responses.create({
      model: "fake-model",
      tools: [WEATHER_TOOL],
      input: [...input, call, { type: "function_call_output", call_id: call.call_id, output: "sunny" }],
    });
    assert.equal(second.output_text, REPLY_TEXT);
    assert.deepEqual(served.engine.lastChatRequest().messages, [
      { role: "user", content: "weather in Paris?" },
      { role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { query: "weather in Paris?" } } }] },
      { role: "tool", content: "sunny", tool_name: "get_weather" },
    ]);
  });

  test("streams a function call's arguments", async () => {
    const stream = served.openai.responses.stream({ model: "fake-model", input: "weather?", tools: [WEATHER_TOOL] });
    const deltas: string[] = [];
    stream.on("response.function_call_arguments.delta", (event) => deltas.push(event.delta));
    const final = await stream.finalResponse();
    assert.deepEqual(deltas, [JSON.stringify({ query: "weather?" })]);
    const call = final.output.find((item) => item.type === "function_call");
    assert.ok(call?.type === "function_call");
    assert.equal(call.arguments, JSON.stringify({ query: "weather?" }));
    assert.equal(call.status, "completed");
  });

  test("maps tool_choice: none withholds the tools, a named function and required force a call", async () => {
    const other = { ...WEATHER_TOOL, name: "get_time" };
    const ask = (tool_choice: OpenAI.Responses.ResponseCreateParams["tool_choice"]) =>
      served.openai.responses.create({ model: "fake-model", input: "hi", tools: [WEATHER_TOOL, other], tool_choice });
    const none = await ask("none");
    assert.equal(none.output_text, REPLY_TEXT);
    assert.equal(served.engine.lastChatRequest().tools, undefined);
    // Forced choices reach the engine as its tool_choice (src/chat/prompt.ts picks the grammar), not as a format.
    const named = await ask({ type: "function", name: "get_time" });
    assert.deepEqual(named.tool_choice, { type: "function", name: "get_time" });
    assert.deepEqual(served.engine.lastChatRequest().tool_choice, { type: "function", function: { name: "get_time" } });
    assert.equal(served.engine.lastChatRequest().format, undefined);
    assert.equal(served.engine.lastChatRequest().think, false);
    await ask("required");
    assert.equal(served.engine.lastChatRequest().tool_choice, "required");
    assert.equal(served.engine.lastChatRequest().format, undefined);
  });

  test("raises the SDK's typed errors, and refuses previous_response_id clearly", async () => {
    await assert.rejects(served.openai.responses.create({ model: "nope", input: "hi" }), (err: InstanceType<typeof OpenAI.APIError>) => {
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal(err.type, "not_found_error");
      return true;
    });
    await assert.rejects(served.openai.responses.create({ model: "fake-model", input: "hi", previous_response_id: "resp_1" }), (err: InstanceType<typeof OpenAI.APIError>) => {
      assert.ok(err instanceof OpenAI.BadRequestError);
      assert.match(err.message, /invalid previous_response_id: vllama does not store responses/);
      return true;
    });
  });

  test("ends a stream whose generation fails with response.failed", async () => {
    served.engine.failAfterTokens = 2;
    try {
      const stream = served.openai.responses.stream({ model: "fake-model", input: "hi" });
      const final = await stream.finalResponse();
      assert.equal(final.status, "failed");
      assert.deepEqual(final.error, { code: "server_error", message: "llama runner process has terminated" });
      assert.equal(final.output_text, REPLY_TOKENS.slice(0, 2).join(""));
    } finally {
      served.engine.failAfterTokens = undefined;
    }
  });

  test("serves an unrelated request while a bad one is in flight", async () => {
    const { stalled, failing } = await startBadRequests(served, "/v1/responses", '{"model": "fake-model", "inp', { model: "fake-model", input: "hi", stream: true });
    try {
      const response = await served.openai.responses.create({ model: "fake-model", input: "hi" });
      assert.equal(response.output_text, REPLY_TEXT);
      const events = parseEvents(await failing.text());
      assert.equal(events.at(-1)!.type, "response.failed");
    } finally {
      stalled.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input: status and OpenAI's error body for each

function create(fields: Record<string, unknown>): Record<string, unknown> {
  return { model: "fake-model", input: "hi", ...fields };
}

const CALL = { type: "function_call", call_id: "call_1", name: "get_weather", arguments: '{"query": "x"}' };

interface BadCase {
  name: string;
  body: unknown;
  status: number;
  error: RegExp;
}

const BAD_CASES: BadCase[] = [
  { name: "malformed JSON", body: "{", status: 400, error: /^invalid JSON body/ },
  { name: "missing model", body: { input: "hi" }, status: 400, error: /^model is required$/ },
  { name: "missing input", body: { model: "fake-model" }, status: 400, error: /^input is required$/ },
  { name: "input not text or items", body: create({ input: 5 }), status: 400, error: /^invalid input: expected a string or an array of input items$/ },
  { name: "unknown item type", body: create({ input: [{ type: "file_search_call", id: "x" }] }), status: 400, error: /^invalid input\.0\.type: expected an input item of type "message", "function_call", "function_call_output", "reasoning"$/ },
  { name: "unknown content part", body: create({ input: [{ role: "user", content: [{ type: "input_file", file_id: "f" }] }] }), status: 400, error: /^invalid input\.0\.content\.0\.type: expected a content part of type/ },
  { name: "bad role", body: create({ input: [{ role: "tool", content: "x" }] }), status: 400, error: /^invalid input\.0\.role/ },
  { name: "function_call_output for an unknown call_id", body: create({ input: [CALL, { type: "function_call_output", call_id: "call_2", output: "sunny" }] }), status: 400, error: /^invalid input\.1\.call_id: "call_2" answers no function_call item before it$/ },
  { name: "function_call arguments not JSON", body: create({ input: [{ ...CALL, arguments: "{oops" }] }), status: 400, error: /^invalid input\.0\.arguments: expected a JSON object string$/ },
  { name: "image by an ftp URL", body: create({ input: [{ role: "user", content: [{ type: "input_image", image_url: "ftp://example.com/a.png", detail: "auto" }] }] }), status: 400, error: /^invalid image_url: expected a base64 data URL \(data:image\/\.\.\.;base64,\.\.\.\) or an http\(s\) URL$/ },
  { name: "image by file id", body: create({ input: [{ role: "user", content: [{ type: "input_image", file_id: "file_1", detail: "auto" }] }] }), status: 400, error: /^invalid input\.0: an input_image needs an image_url/ },
  { name: "web search tool", body: create({ tools: [{ type: "web_search" }] }), status: 400, error: /^invalid tools\.0\.type: only function tools are supported/ },
  { name: "tool_choice names an unknown function", body: create({ tools: [WEATHER_TOOL], tool_choice: { type: "function", name: "get_time" } }), status: 400, error: /^invalid tool_choice\.name: no function named "get_time"$/ },
  { name: "tool_choice required without tools", body: create({ tool_choice: "required" }), status: 400, error: /^invalid tool_choice: forcing a call needs tools$/ },
  { name: "unknown tool_choice", body: create({ tool_choice: "any" }), status: 400, error: /^invalid tool_choice: expected "none", "auto", "required"/ },
  { name: "forced call with a text format", body: create({ tools: [WEATHER_TOOL], tool_choice: "required", text: { format: { type: "json_object" } } }), status: 400, error: /^text\.format cannot be combined with a tool_choice that forces a call$/ },
  { name: "json_schema format without a schema", body: create({ text: { format: { type: "json_schema", name: "x" } } }), status: 400, error: /^text\.format\.schema is required$/ },
  { name: "json_schema schema not an object", body: create({ text: { format: { type: "json_schema", name: "x", schema: [] } } }), status: 400, error: /^invalid text\.format\.schema: expected record$/ },
  { name: "unknown text format", body: create({ text: { format: { type: "xml" } } }), status: 400, error: /^invalid text\.format\.type: expected a text format of type/ },
  { name: "unknown reasoning effort", body: create({ reasoning: { effort: "max" } }), status: 400, error: /^invalid reasoning\.effort: expected one of/ },
  { name: "max_output_tokens 0", body: create({ max_output_tokens: 0 }), status: 400, error: /^invalid max_output_tokens: must be >= 1$/ },
  { name: "temperature 3", body: create({ temperature: 3 }), status: 400, error: /^invalid temperature: must be <= 2$/ },
  { name: "previous_response_id", body: create({ previous_response_id: "resp_1" }), status: 400, error: /^invalid previous_response_id: vllama does not store responses or conversations/ },
  { name: "conversation", body: create({ conversation: "conv_1" }), status: 400, error: /^invalid conversation: vllama does not store/ },
  { name: "unknown model", body: create({ model: "nope" }), status: 404, error: /^model 'nope' not found$/ },
];

describe("responses: bad input", () => {
  const served = serveDuringSuite(() => new FakeEngine(), { bodyLimit: "64kb" });

  for (const c of BAD_CASES) {
    test(`${c.name} -> ${c.status}`, async () => {
      const res = await post(served.url, c.body);
      const text = await res.text();
      assert.equal(res.status, c.status, text);
      const body = JSON.parse(text);
      assert.deepEqual(Object.keys(body), ["error"]);
      assert.deepEqual(Object.keys(body.error), ["message", "type", "param", "code"]);
      assert.equal(body.error.type, c.status === 404 ? "not_found_error" : "invalid_request_error");
      assert.match(body.error.message, c.error);
    });
  }

  test("a busy server answers 503 before any stream event", async () => {
    served.engine.maxPending = 0;
    try {
      const res = await post(served.url, create({ stream: true }));
      assert.equal(res.status, 503);
      assert.match((await res.json()).error.message, /^server busy/);
    } finally {
      served.engine.maxPending = Infinity;
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The real engine

describe("responses on the real engine", () => {
  const served = serveDuringSuite(() => engineWithBuiltinModel("responses"), { bodyLimit: "64kb" });
  before(() => createStoriesChat(served.url));

  test("returns stories260K's greedy reference text, whole and streamed", async () => {
    const params = { model: "stories-chat", input: REFERENCE_PROMPT, max_output_tokens: 48, temperature: 0 };
    const response = await served.openai.responses.create(params);
    assert.equal(response.output_text, REFERENCE_TEXT);
    assert.equal(response.status, "incomplete");
    assert.equal(response.usage?.output_tokens, 48);
    const stream = served.openai.responses.stream(params);
    let text = "";
    stream.on("response.output_text.delta", (event) => (text += event.delta));
    const final = await stream.finalResponse();
    assert.equal(text, REFERENCE_TEXT);
    assert.equal(final.output_text, REFERENCE_TEXT);
    assert.equal(final.usage?.input_tokens, response.usage?.input_tokens);
  });

  test("forces a function call with tool_choice, and takes its output back (demo model)", async () => {
    const tool = { type: "function" as const, name: "get_weather", strict: true, parameters: { type: "object", properties: { city: { enum: ["Paris", "Rome"] } }, required: ["city"] } };
    const input: OpenAI.Responses.ResponseInput = [{ role: "user", content: "Weather in Paris?" }];
    const first = await served.openai.responses.create({ model: BUILTIN_MODEL, input, tools: [tool], tool_choice: { type: "function", name: "get_weather" }, max_output_tokens: 64, temperature: 0 });
    const call = first.output.find((item) => item.type === "function_call");
    assert.ok(call?.type === "function_call", JSON.stringify(first.output));
    assert.ok(["Paris", "Rome"].includes(JSON.parse(call.arguments).city));
    const second = await served.openai.responses.create({
      model: BUILTIN_MODEL, tools: [tool], max_output_tokens: 4,
      input: [...input, call, { type: "function_call_output", call_id: call.call_id, output: "sunny" }],
    });
    assert.equal(second.usage?.output_tokens, 4);
    assert.ok(second.usage!.input_tokens > first.usage!.input_tokens);
  });

  test("parallel_tool_calls false: a forced answer is exactly one function call (demo model)", async () => {
    const tool = { type: "function" as const, name: "get_weather", strict: true, parameters: { type: "object", properties: { city: { enum: ["Paris", "Rome"] } }, required: ["city"] } };
    const response = await served.openai.responses.create({
      model: BUILTIN_MODEL, input: "Weather in Paris and Rome?", tools: [tool], tool_choice: "required", parallel_tool_calls: false, max_output_tokens: 64, temperature: 0,
    });
    assert.equal(response.parallel_tool_calls, false);
    assert.equal(response.status, "completed", JSON.stringify(response));
    const calls = response.output.filter((item) => item.type === "function_call");
    assert.equal(calls.length, 1, JSON.stringify(response.output));
    assert.ok(["Paris", "Rome"].includes(JSON.parse(calls[0]!.arguments).city));
  });

  test("refuses a JSON schema the grammar cannot take, with a 400", async () => {
    const res = await post(served.url, { model: "stories-chat", input: "x", text: { format: { type: "json_schema", name: "x", schema: { type: "object", properties: { a: { $ref: "#/nowhere" } } } } } });
    const body = await res.json();
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(body.error.message, /^invalid format: /);
  });
});
