// Bad values of the agent-API parameters (n, prompt lists, min_tokens, tool_choice,
// parallel_tool_calls, suffix's companions): each a 400 naming the field, sent while an unrelated streamed request is in
// flight, which still completes whole.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { FakeEngine, REPLY_TEXT } from "../helpers/fake-engine.js";
import { serveDuringSuite } from "../helpers/served.js";

const model = "fake-model";
const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }];
const chat = (extra: object) => ({ model, messages: [{ role: "user", content: "hi" }], ...extra });
const complete = (extra: object) => ({ model, prompt: "hi", ...extra });

const CASES: Array<{ name: string; path: string; body: object; error: RegExp }> = [
  { name: "completions n 0", path: "/v1/completions", body: complete({ n: 0 }), error: /^invalid n: must be >= 1$/ },
  { name: "completions n 129", path: "/v1/completions", body: complete({ n: 129 }), error: /^invalid n: must be <= 128$/ },
  { name: "completions 2 prompts x n 65", path: "/v1/completions", body: complete({ prompt: ["a", "b"], n: 65 }), error: /^too many choices: 2 prompts x n 65 is over 128$/ },
  { name: "completions empty prompt list", path: "/v1/completions", body: complete({ prompt: [] }), error: /^invalid prompt/ },
  { name: "completions prompt list of numbers", path: "/v1/completions", body: complete({ prompt: [1, 2] }), error: /^invalid prompt/ },
  { name: "completions min_tokens -1", path: "/v1/completions", body: complete({ min_tokens: -1 }), error: /^invalid min_tokens: must be >= 0$/ },
  { name: "completions best_of 2", path: "/v1/completions", body: complete({ best_of: 2 }), error: /^invalid best_of: only best_of=1 is supported$/ },
  { name: "chat n 0", path: "/v1/chat/completions", body: chat({ n: 0 }), error: /^invalid n: must be >= 1$/ },
  { name: "chat n 129", path: "/v1/chat/completions", body: chat({ n: 129 }), error: /^invalid n: must be <= 128$/ },
  { name: "chat min_tokens 1.5", path: "/v1/chat/completions", body: chat({ min_tokens: 1.5 }), error: /^invalid min_tokens/ },
  { name: "chat tool_choice unknown function", path: "/v1/chat/completions", body: chat({ tools, tool_choice: { type: "function", function: { name: "nope" } } }), error: /^invalid tool_choice\.function\.name: no function named "nope"$/ },
  { name: "chat tool_choice required without tools", path: "/v1/chat/completions", body: chat({ tool_choice: "required" }), error: /^invalid tool_choice: forcing a call needs tools$/ },
  { name: "chat tool_choice any", path: "/v1/chat/completions", body: chat({ tools, tool_choice: "any" }), error: /^invalid tool_choice/ },
  { name: "ollama chat tool_choice unknown function", path: "/api/chat", body: chat({ tools, tool_choice: { type: "function", function: { name: "nope" } } }), error: /^invalid tool_choice\.function\.name: no function named "nope"$/ },
  { name: "ollama chat tool_choice with format", path: "/api/chat", body: chat({ tools, tool_choice: "required", format: "json" }), error: /^format cannot be combined with a tool_choice that forces a call$/ },
  { name: "ollama generate min_tokens -1", path: "/api/generate", body: complete({ options: { min_tokens: -1 } }), error: /^invalid options\.min_tokens: must be >= 0$/ },
  { name: "anthropic tool_choice unknown tool", path: "/v1/messages", body: chat({ max_tokens: 8, tools: [{ name: "get_weather", input_schema: { type: "object" } }], tool_choice: { type: "tool", name: "nope" } }), error: /^invalid tool_choice\.name: no tool named "nope"$/ },
  { name: "chat parallel_tool_calls not a boolean", path: "/v1/chat/completions", body: chat({ tools, parallel_tool_calls: "no" }), error: /^invalid parallel_tool_calls/ },
  { name: "ollama chat parallel_tool_calls not a boolean", path: "/api/chat", body: chat({ tools, parallel_tool_calls: 0 }), error: /^invalid parallel_tool_calls/ },
  { name: "responses parallel_tool_calls not a boolean", path: "/v1/responses", body: { model, input: "hi", parallel_tool_calls: "false" }, error: /^invalid parallel_tool_calls/ },
  { name: "anthropic disable_parallel_tool_use not a boolean", path: "/v1/messages", body: chat({ max_tokens: 8, tools: [{ name: "get_weather", input_schema: { type: "object" } }], tool_choice: { type: "auto", disable_parallel_tool_use: "yes" } }), error: /^invalid tool_choice/ },
  { name: "responses tool_choice required without tools", path: "/v1/responses", body: { model, input: "hi", tool_choice: "required" }, error: /^invalid tool_choice: forcing a call needs tools$/ },
];

function errorMessage(body: any): string {
  if (typeof body.error === "string") return body.error;
  return body.error.message;
}

describe("bad agent-API parameters beside a request in flight", () => {
  const served = serveDuringSuite(() => Object.assign(new FakeEngine(), { tokenDelayMs: 30 }));
  const post = (path: string, body: object) => fetch(served.url + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  for (const c of CASES) {
    test(`${c.name} -> 400, the unrelated stream completes`, async () => {
      const unrelated = await post("/api/generate", { model, prompt: "story", stream: true });
      assert.equal(unrelated.status, 200);
      const bad = await post(c.path, c.body);
      const body = await bad.json();
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.match(errorMessage(body), c.error);
      const lines = (await unrelated.text()).trim().split("\n").map((l) => JSON.parse(l));
      assert.equal(lines.map((l) => l.response).join(""), REPLY_TEXT);
      assert.equal(lines.at(-1).done, true);
    });
  }
});
