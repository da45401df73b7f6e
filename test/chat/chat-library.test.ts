// llama.cpp's chat library through the binding: every template of the release's bundle renders a
// tools conversation, and each family's own call syntax (the canned outputs of the bundle's
// tests/test-chat.cpp) comes out as the calls llama.cpp's test expects, whole and streamed.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import type { ChatMessage, ToolCall } from "../../src/api/ollama.js";
import type { Tool } from "../../src/api/shared-fields.js";
import { ChatLibrary, openAiMessages, type ChatLibraryRequest } from "../../src/chat/chat-library.js";
import { LibraryOutputParser } from "../../src/chat/library-output.js";
import { BadRequestError } from "../../src/api/errors.js";

const TEMPLATES = path.join(import.meta.dirname, "..", "..", "deps", "llama.cpp-v0.5.0", "models", "templates");

function templateSource(name: string): string {
  return readFileSync(path.join(TEMPLATES, `${name}.jinja`), "utf8");
}

/** tests/test-chat.cpp's special_function_tool. */
const specialFunction: Tool = {
  type: "function",
  function: {
    name: "special_function", description: "I'm special",
    parameters: { type: "object", properties: { arg1: { type: "integer", description: "The arg." } }, required: ["arg1"] },
  },
};
/** tests/test-chat.cpp's get_time_tool. */
const getTime: Tool = {
  type: "function",
  function: { name: "get_time", description: "Get the time", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } },
};

async function library(name: string): Promise<ChatLibrary> {
  const lib = await ChatLibrary.cached(templateSource(name), "<s>", "</s>");
  assert.ok(lib, `${name} parses in the library`);
  return lib;
}

const conversation: ChatMessage[] = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "What time is it in Paris?" },
  { role: "assistant", content: "", tool_calls: [{ function: { name: "get_time", arguments: { city: "Paris" } } }] },
  { role: "tool", content: "12:00", tool_name: "get_time" },
];

/** Templates that refuse such a conversation themselves (raise_exception): Gemma 2 has no tool role. */
const refusing: Record<string, RegExp> = { "google-gemma-2-2b-it": /Conversation roles must alternate/ };

test("every template in the bundle renders a conversation with a system prompt, tools, a call and its result", async () => {
  const names = readdirSync(TEMPLATES).filter((f) => f.endsWith(".jinja")).map((f) => f.slice(0, -".jinja".length));
  assert.ok(names.length >= 70, `${names.length} templates`);
  const failures: string[] = [];
  for (const name of names) {
    try {
      const { params } = await (await library(name)).apply({ messages: conversation, tools: [getTime], enableThinking: false });
      assert.ok(params.prompt.includes("What time is it in Paris?"), `${name}: the question is in the prompt`);
      assert.equal(refusing[name], undefined, `${name} renders`);
    } catch (error) {
      if (!(error instanceof BadRequestError && refusing[name]?.test(error.message))) failures.push(`${name}: ${(error as Error).message}`);
    }
  }
  assert.deepEqual(failures, []);
});

/** Reads `text` through the library's parser for the template's prompt, in pieces of `size` characters. */
async function parseAnswer(name: string, req: Omit<ChatLibraryRequest, "messages">, text: string, size: number) {
  const { parser } = await (await library(name)).apply({ messages: [{ role: "user", content: "Hi" }], ...req });
  const output = new LibraryOutputParser(parser);
  let thinking = "", content = "";
  const toolCalls: ToolCall[] = [];
  for (let i = 0; i < text.length; i += size) {
    const o = await output.push(text.slice(i, i + size));
    thinking += o.thinking;
    content += o.content;
    toolCalls.push(...o.toolCalls);
  }
  const last = await output.finish();
  return { thinking: thinking + last.thinking, content: content + last.content, calls: [...toolCalls, ...last.toolCalls].map((c) => c.function) };
}

const call1 = [{ index: 0, name: "special_function", arguments: { arg1: 1 } }];
const hermesCall = '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}\n</tool_call>';

/** Each family's canned answer from tests/test-chat.cpp and the message that test expects. */
const families: Array<{ template: string; text: string; tools?: Tool[]; think?: boolean; thinking?: string; content?: string; calls?: typeof call1; id?: string }> = [
  { template: "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", text: '<tool_call>\n{"name": "special_function", "arguments": {"arg1": 1}}</tool_call>' },
  { template: "NousResearch-Hermes-3-Llama-3.1-8B-tool_use", text: hermesCall },
  { template: "Qwen-Qwen2.5-7B-Instruct", text: hermesCall },
  { template: "Qwen-Qwen2.5-7B-Instruct", text: `Hello, world!\nWhat's up?${hermesCall}`, content: "Hello, world!\nWhat's up?" },
  { template: "Qwen3-Coder", text: "<tool_call>\n<function=special_function>\n<parameter=arg1>\n1\n</parameter>\n</function>\n</tool_call>" },
  { template: "ibm-granite-granite-4.0", text: hermesCall },
  { template: "mistralai-Mistral-Nemo-Instruct-2407", text: '[TOOL_CALLS][{"name": "special_function", "arguments": {"arg1": 1}, "id": "123456789"}]', id: "123456789" },
  { template: "meetkai-functionary-medium-v3.1", text: '<function=special_function>{"arg1": 1}</function>' },
  { template: "meetkai-functionary-medium-v3.2", text: 'special_function\n{"arg1": 1}' },
  { template: "fireworks-ai-llama-3-firefunction-v2", text: ' functools[{"name": "special_function", "arguments": {"arg1": 1}}]' },
  {
    template: "CohereForAI-c4ai-command-r7b-12-2024-tool_use", think: true, thinking: "I'm\nthinking", id: "0",
    text: '<|START_THINKING|>I\'m\nthinking<|END_THINKING|><|START_ACTION|>[\n    {"tool_call_id": "0", "tool_name": "special_function", "parameters": {"arg1": 1}}\n]<|END_ACTION|>',
  },
  { template: "CohereForAI-c4ai-command-r-plus-tool_use", text: 'Action:\n```json\n[{"tool_name": "special_function", "parameters": {"arg1": 1}}]\n```' },
  {
    template: "llama-cpp-deepseek-r1", think: true,
    text: '</think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>special_function\n```json\n{"arg1": 1}```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
  },
  {
    template: "deepseek-ai-DeepSeek-V3.1", tools: [getTime],
    text: '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{"city": "XYZCITY"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    calls: [{ index: 0, name: "get_time", arguments: { city: "XYZCITY" } as never }],
  },
  { template: "GLM-4.6", text: "<tool_call>special_function\n<arg_key>arg1</arg_key>\n<arg_value>1</arg_value>\n</tool_call>" },
  { template: "openai-gpt-oss-120b", text: ' to=functions.special_function<|channel|>analysis<|message|>{"arg1": 1}' },
  {
    template: "moonshotai-Kimi-K2", id: "functions.special_function:0",
    text: '<|tool_calls_section_begin|><|tool_call_begin|>functions.special_function:0<|tool_call_argument_begin|>{"arg1": 1}<|tool_call_end|><|tool_calls_section_end|>',
  },
];

test("each family's call syntax parses to llama.cpp's expected calls, whole and streamed a character at a time", async () => {
  for (const f of families) {
    const req = { tools: f.tools ?? [specialFunction], enableThinking: f.think ?? false };
    const expected = { thinking: f.thinking ?? "", content: f.content ?? "", calls: f.calls ?? call1 };
    assert.deepEqual(await parseAnswer(f.template, req, f.text, f.text.length), expected, `${f.template}: whole`);
    assert.deepEqual(await parseAnswer(f.template, req, f.text, 1), expected, `${f.template}: streamed`);
    if (f.id !== undefined) {
      const { parser } = await (await library(f.template)).apply({ messages: [{ role: "user", content: "Hi" }], ...req });
      const message = JSON.parse(await parser.parse(f.text, false)) as { tool_calls: Array<{ id: string }> };
      assert.equal(message.tool_calls[0]!.id, f.id, `${f.template}: the call's id`);
    }
  }
});

test("a call is passed on as soon as it is complete, before the answer ends", async () => {
  const { parser } = await (await library("Qwen-Qwen2.5-7B-Instruct")).apply({ messages: [{ role: "user", content: "Hi" }], tools: [specialFunction], enableThinking: false });
  const output = new LibraryOutputParser(parser);
  const first = await output.push(`${hermesCall}\n<tool_call>\n{"name": "special_function", "arguments": {"arg1": 2`);
  assert.deepEqual(first.toolCalls.map((c) => c.function), call1);
  const rest = await output.push("}}\n</tool_call>");
  assert.deepEqual(rest.toolCalls.map((c) => c.function), [{ index: 1, name: "special_function", arguments: { arg1: 2 } }]);
  assert.deepEqual((await output.finish()).toolCalls, []);
});

test("an answer that is not the family's syntax stays content", async () => {
  for (const text of ["<tool_call>\n{\"name\": \"special_function\", \"arguments\": {\"arg1\": 1", "Plain words, no call."]) {
    const out = await parseAnswer("Qwen-Qwen2.5-7B-Instruct", { tools: [specialFunction], enableThinking: false }, text, 1);
    assert.deepEqual(out.calls, [], text);
    assert.ok(out.content.length > 0, text);
  }
});

test("a template that throws, and inputs the library refuses, are 400s with the cause", async () => {
  const raising = await ChatLibrary.cached("{{ raise_exception('only user messages, please') }}", "", "");
  assert.ok(raising);
  await assert.rejects(
    raising.apply({ messages: [{ role: "user", content: "Hi" }], tools: [specialFunction], enableThinking: false }),
    (e: Error) => e instanceof BadRequestError && /only user messages, please/.test(e.message),
  );
  const qwen = await library("Qwen-Qwen2.5-7B-Instruct");
  const badTool = { type: "function", function: { name: "x", parameters: "not a schema" } } as unknown as Tool;
  await assert.rejects(
    qwen.apply({ messages: [{ role: "user", content: "Hi" }], tools: [badTool], enableThinking: false }),
    (e: Error) => e instanceof BadRequestError,
  );
});

test("Ollama's messages get call ids in order, and each tool result the id of the call it answers", () => {
  const messages = openAiMessages([
    { role: "assistant", content: "", tool_calls: [{ function: { name: "a", arguments: {} } }, { function: { name: "b", arguments: { x: 1 } } }] },
    { role: "tool", content: "A", tool_name: "a" },
    { role: "tool", content: "B" },
  ]);
  assert.deepEqual(messages, [
    {
      role: "assistant", content: "", tool_calls: [
        { type: "function", id: "000000001", function: { name: "a", arguments: "{}" } },
        { type: "function", id: "000000002", function: { name: "b", arguments: '{"x":1}' } },
      ],
    },
    { role: "tool", content: "A", tool_call_id: "000000001", name: "a" },
    { role: "tool", content: "B", tool_call_id: "000000002" },
  ]);
});
