// tool_choice on /v1/chat/completions and /api/chat (a vllama extension), mapped by the one
// function the Anthropic and Responses APIs use too (src/chat/tool-choice.ts); and tool calls
// streamed as soon as each is complete. Over the fake engine (a Hermes-style scripted model).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import OpenAI from "openai";
import type { ChatRequest } from "../../src/api/ollama.js";
import { forcedCallFormat } from "../../src/chat/prompt.js";
import { withToolChoice } from "../../src/chat/tool-choice.js";
import { FakeEngine } from "../helpers/fake-engine.js";
import { serveDuringSuite } from "../helpers/served.js";

const weather = { type: "function" as const, function: { name: "get_weather", description: "Weather", parameters: { type: "object", properties: { city: { type: "string" } } } } };
const time = { type: "function" as const, function: { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string" } } } } };
const callOf = (tool: typeof weather | typeof time) => ({
  type: "object",
  properties: { name: { const: tool.function.name }, arguments: tool.function.parameters },
  required: ["name", "arguments"],
});

describe("tool_choice", () => {
  const served = serveDuringSuite(() => new FakeEngine());

  const messages = [{ role: "user" as const, content: "hi" }];

  test("/v1/chat/completions: required and a named function reach the engine as a forced choice (one JSON call where the chat library does not know the template); none withholds the tools", async () => {
    const ask = (tool_choice: OpenAI.Chat.ChatCompletionToolChoiceOption) =>
      served.openai.chat.completions.create({ model: "fake-model", messages, tools: [weather, time], tool_choice });
    await ask("required");
    assert.equal(served.engine.lastChatRequest().tool_choice, "required");
    assert.equal(served.engine.lastChatRequest().format, undefined);
    assert.deepEqual(forcedCallFormat(served.engine.lastChatRequest()), { anyOf: [callOf(weather), callOf(time)] });
    assert.equal(served.engine.lastChatRequest().think, false);
    await ask({ type: "function", function: { name: "get_time" } });
    assert.deepEqual(forcedCallFormat(served.engine.lastChatRequest()), callOf(time));
    assert.equal(served.engine.lastChatRequest().tools?.length, 2);
    const none = await ask("none");
    assert.equal(served.engine.lastChatRequest().tools, undefined);
    assert.equal(none.choices[0]!.finish_reason, "stop");
    const auto = await ask("auto");
    assert.equal(served.engine.lastChatRequest().format, undefined);
    assert.equal(auto.choices[0]!.finish_reason, "tool_calls");
  });

  test("parallel_tool_calls false reaches the engine from every API (Anthropic's disable_parallel_tool_use); without tools it is moot", async () => {
    await served.openai.chat.completions.create({ model: "fake-model", messages, tools: [weather], parallel_tool_calls: false });
    assert.equal(served.engine.lastChatRequest().parallel_tool_calls, false);
    await served.openai.chat.completions.create({ model: "fake-model", messages, tools: [weather] });
    assert.equal(served.engine.lastChatRequest().parallel_tool_calls, undefined);
    await served.openai.chat.completions.create({ model: "fake-model", messages, parallel_tool_calls: false });
    assert.equal(served.engine.lastChatRequest().parallel_tool_calls, undefined);
    const responses = await served.openai.responses.create({
      model: "fake-model", input: "hi", parallel_tool_calls: false, tools: [{ type: "function", name: "get_weather", parameters: weather.function.parameters, strict: false }],
    });
    assert.equal(served.engine.lastChatRequest().parallel_tool_calls, false);
    assert.equal(responses.parallel_tool_calls, false);
    await served.anthropic.messages.create({
      model: "fake-model", max_tokens: 8, messages, tools: [{ name: "get_weather", input_schema: { type: "object" } }], tool_choice: { type: "auto", disable_parallel_tool_use: true },
    });
    assert.equal(served.engine.lastChatRequest().parallel_tool_calls, false);
    const ollama = await served.ollama.chat({ model: "fake-model", messages, tools: [weather], stream: false, parallel_tool_calls: false } as { model: string; messages: typeof messages; stream: false });
    assert.equal(served.engine.lastChatRequest().parallel_tool_calls, false);
    assert.equal(ollama.message.tool_calls?.length, 1);
  });

  test("/api/chat takes the same tool_choice", () => {
    const req: ChatRequest = { model: "m", messages, tools: [weather, time], tool_choice: { type: "function", function: { name: "get_weather" } } };
    const forced = withToolChoice(req);
    assert.deepEqual(forced, { model: "m", messages, tools: [weather, time], tool_choice: req.tool_choice, think: false });
    assert.deepEqual(forcedCallFormat(forced), callOf(weather));
    assert.deepEqual(withToolChoice({ ...req, tool_choice: "none" }), { model: "m", messages });
    assert.deepEqual(withToolChoice({ ...req, tool_choice: "auto", think: true }), { model: "m", messages, tools: [weather, time], think: true });
    const untouched = { model: "m", messages, tools: [weather] };
    assert.equal(withToolChoice(untouched), untouched);
  });

  test("bad tool_choice values are 400s naming the field, on both APIs", async () => {
    const cases: Array<[object, RegExp]> = [
      [{ tools: [weather], tool_choice: { type: "function", function: { name: "nope" } } }, /^invalid tool_choice\.function\.name: no function named "nope"$/],
      [{ tool_choice: "required" }, /^invalid tool_choice: forcing a call needs tools$/],
      [{ tools: [weather], tool_choice: "any" }, /^invalid tool_choice/],
      [{ tools: [weather], tool_choice: { type: "function" } }, /^invalid tool_choice/],
    ];
    for (const [extra, message] of cases) {
      await assert.rejects(served.openai.chat.completions.create({ model: "fake-model", messages, ...extra } as never), (e: InstanceType<typeof OpenAI.APIError>) => {
        assert.equal(e.status, 400);
        assert.match(e.message, new RegExp(message.source.replace("^", "")));
        return true;
      });
      await assert.rejects(served.ollama.chat({ model: "fake-model", messages, ...extra } as never), (e: Error & { status_code?: number }) => {
        assert.equal(e.status_code, 400);
        assert.match(e.message, message);
        return true;
      });
    }
    await assert.rejects(
      served.openai.chat.completions.create({ model: "fake-model", messages, tools: [weather], tool_choice: "required", response_format: { type: "json_object" } }),
      /response_format cannot be combined with a tool_choice that forces a call/,
    );
    await assert.rejects(
      served.ollama.chat({ model: "fake-model", messages, tools: [weather], tool_choice: "required", format: "json" } as never),
      (e: Error) => e.message === "format cannot be combined with a tool_choice that forces a call",
    );
  });

  test("a tool call streams as soon as it is complete, before the answer ends", async () => {
    const chunks = [];
    for await (const c of await served.ollama.chat({ model: "fake-model", messages, tools: [weather], stream: true })) chunks.push(c);
    const withCall = chunks.findIndex((c) => c.message.tool_calls?.length);
    assert.ok(withCall >= 0 && !chunks[withCall]!.done, "the call comes in a chunk of its own, not the final one");
    assert.deepEqual(chunks[withCall]!.message.tool_calls!.map((c) => c.function.name), ["get_weather"]);
    assert.ok(chunks.slice(withCall + 1).every((c) => !c.message.tool_calls?.length), "and only once");
  });
});
