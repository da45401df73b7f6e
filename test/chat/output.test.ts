// Thinking and tool calls together, streamed or buffered: the same answer either way.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ToolCall } from "../../src/api/ollama.js";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ChatLibrary } from "../../src/chat/chat-library.js";
import { chatAnswerParser, ChatOutputParser } from "../../src/chat/output.js";

const answer = '<think>\nThe user wants weather.\n</think>\n\nLet me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';

function run(chunks: string[], options: ConstructorParameters<typeof ChatOutputParser>[0]) {
  const parser = new ChatOutputParser(options);
  let thinking = "", content = "";
  const toolCalls: ToolCall[] = [];
  for (const c of chunks) {
    const o = parser.push(c);
    thinking += o.thinking;
    content += o.content;
    toolCalls.push(...o.toolCalls);
  }
  const last = parser.finish();
  return { thinking: thinking + last.thinking, content: content + last.content, toolCalls: [...toolCalls, ...last.toolCalls] };
}

test("thinking, content and a tool call separate the same at every chunking", () => {
  const whole = run([answer], { think: true, startsInThinking: false, toolFormat: "hermes" });
  assert.equal(whole.thinking, "The user wants weather.");
  assert.equal(whole.content, "Let me check.");
  assert.deepEqual(whole.toolCalls.map((c) => c.function), [{ index: 0, name: "get_weather", arguments: { city: "Paris" } }]);
  for (let size = 1; size <= 7; size++) {
    const chunks = Array.from({ length: Math.ceil(answer.length / size) }, (_, i) => answer.slice(i * size, (i + 1) * size));
    assert.deepEqual(run(chunks, { think: true, startsInThinking: false, toolFormat: "hermes" }), whole, `chunks of ${size}`);
  }
});

test("without think or tools, everything is content", () => {
  const out = run([answer], { think: false, startsInThinking: false });
  assert.equal(out.content, answer);
  assert.equal(out.thinking, "");
  assert.deepEqual(out.toolCalls, []);
});

test("a prompt that opened the thinking block", () => {
  const out = run(["reasoning here</think>", "The answer."], { think: true, startsInThinking: true });
  assert.equal(out.thinking, "reasoning here");
  assert.equal(out.content, "The answer.");
});

test("with parallel_tool_calls false the first call is the answer's only one, on both parsers", async () => {
  const two = '<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>';
  const names = async (options: Parameters<typeof chatAnswerParser>[0]) => {
    const parser = chatAnswerParser(options);
    const calls: ToolCall[] = [];
    for (const c of two) calls.push(...(await parser.push(c)).toolCalls);
    calls.push(...(await parser.finish()).toolCalls);
    return calls.map((c) => c.function.name);
  };
  const own = { think: false, startsInThinking: false, toolFormat: "hermes" as const };
  assert.deepEqual(await names(own), ["a", "b"]);
  assert.deepEqual(await names({ ...own, oneToolCall: true }), ["a"]);
  const library = await ChatLibrary.cached(readFileSync(path.join(import.meta.dirname, "..", "..", "deps", "llama.cpp-v0.5.0", "models", "templates", "Qwen-Qwen2.5-7B-Instruct.jinja"), "utf8"), "", "");
  const tools = [{ type: "function" as const, function: { name: "a", parameters: { type: "object" } } }, { type: "function" as const, function: { name: "b", parameters: { type: "object" } } }];
  const { parser } = await library!.apply({ messages: [{ role: "user", content: "hi" }], tools, enableThinking: false });
  assert.deepEqual(await names({ think: false, startsInThinking: false, library: parser }), ["a", "b"]);
  assert.deepEqual(await names({ think: false, startsInThinking: false, library: parser, oneToolCall: true }), ["a"]);
});
