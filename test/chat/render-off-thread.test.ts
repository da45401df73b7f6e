// A long conversation renders on a worker thread (src/chat/render-off-thread.ts): the same text,
// byte for byte, as on the JS thread for every template family, the same typed error when the
// template refuses, and the event loop runs meanwhile.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { VllamaError } from "../../src/api/errors.js";
import type { ChatMessage } from "../../src/api/ollama.js";
import { OFF_THREAD_MESSAGES, renderChat } from "../../src/chat/render-off-thread.js";
import { ChatTemplate, type ChatRenderOptions } from "../../src/chat/template.js";
import { LLAMA3_LEGACY, LLAMA31, QWEN25, realTemplate, WEATHER_TOOL } from "../helpers/chat-templates.js";

const NOW = new Date(2025, 2, 14, 12, 0, 0);

/**
 * `turns` rounds of a user question, a tool call with its result (when `tools`) and an answer with
 * thinking, after a system message; non-ASCII text on the way, and the user's last.
 */
function conversation(turns: number, tools: boolean): ChatMessage[] {
  const messages: ChatMessage[] = [{ role: "system", content: "You are terse. Überall «Grüße» 🌍." }];
  for (let i = 0; i < turns; i++) {
    messages.push({ role: "user", content: `Weather in city ${i}? — ¿qué tal? ${"ha ".repeat(i % 7)}` });
    if (tools) {
      messages.push({ role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { city: `city ${i}`, days: i % 3 } } }] });
      messages.push({ role: "tool", content: `sunny, ${i % 30}C`, tool_name: "get_weather" });
    }
    messages.push({ role: "assistant", content: `Answer ${i}: fine.\n`, thinking: i % 2 ? `step ${i}` : undefined });
  }
  messages.push({ role: "user", content: "Thanks!" });
  return messages;
}

/** What rendering gives: the text, or the typed error's message and status. */
async function outcome(render: () => string | Promise<string>): Promise<{ text: string } | { error: string; status: number }> {
  try {
    return { text: await render() };
  } catch (err) {
    assert.ok(err instanceof VllamaError, String(err));
    return { error: err.message, status: err.status };
  }
}

/** Bundled Jinja templates of each family the project renders itself (with BOS/EOS), Ollama's Go templates, and the ChatML default. */
const FAMILIES: Array<{ name: string; source: string | undefined; bos?: string; eos?: string; tools: boolean }> = [
  { name: "Qwen2.5", source: realTemplate("Qwen-Qwen2.5-7B-Instruct"), eos: "<|im_end|>", tools: true },
  { name: "Qwen3 (thinking)", source: realTemplate("Qwen-Qwen3-0.6B"), eos: "<|im_end|>", tools: true },
  { name: "Llama 3.1", source: realTemplate("meta-llama-Llama-3.1-8B-Instruct"), bos: "<|begin_of_text|>", eos: "<|eot_id|>", tools: true },
  { name: "Llama 3.2 (strftime_now)", source: realTemplate("meta-llama-Llama-3.2-3B-Instruct"), bos: "<|begin_of_text|>", eos: "<|eot_id|>", tools: true },
  { name: "Mistral Nemo (call ids)", source: realTemplate("mistralai-Mistral-Nemo-Instruct-2407"), bos: "<s>", eos: "</s>", tools: true },
  { name: "Hermes 2 Pro (tool use)", source: realTemplate("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use"), bos: "<|begin_of_text|>", eos: "<|im_end|>", tools: true },
  { name: "Gemma 2 (no system role)", source: realTemplate("google-gemma-2-2b-it"), bos: "<bos>", eos: "<eos>", tools: false },
  { name: "Phi-3.5", source: realTemplate("microsoft-Phi-3.5-mini-instruct"), bos: "<s>", eos: "<|endoftext|>", tools: false },
  { name: "DeepSeek R1 distill", source: realTemplate("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B"), bos: "<｜begin▁of▁sentence｜>", eos: "<｜end▁of▁sentence｜>", tools: false },
  { name: "gpt-oss (reasoning_effort)", source: realTemplate("openai-gpt-oss-120b"), tools: true },
  { name: "ChatML (no template)", source: undefined, tools: false },
  { name: "Ollama Go: llama3.1", source: LLAMA31, tools: true },
  { name: "Ollama Go: qwen2.5", source: QWEN25, tools: true },
  { name: "Ollama Go: llama3 (legacy System/Prompt/Response)", source: LLAMA3_LEGACY, tools: false },
];

describe("rendering off the JS thread", () => {
  for (const family of FAMILIES) {
    test(`${family.name}: a long conversation renders byte-identical on the worker and on the JS thread`, async () => {
      const template = ChatTemplate.cached(family.source);
      const messages = conversation(Math.ceil(OFF_THREAD_MESSAGES / 2) + 40, family.tools);
      const options: ChatRenderOptions = {
        messages, tools: family.tools ? [WEATHER_TOOL] : undefined, bosToken: family.bos, eosToken: family.eos, now: NOW,
        think: family.name.startsWith("gpt-oss") ? "max" : true, addGenerationPrompt: true,
      };
      assert.ok(messages.length >= OFF_THREAD_MESSAGES);
      const onWorker = await outcome(() => renderChat(template, options));
      const onJsThread = await outcome(() => template.render(options));
      assert.deepEqual(onWorker, onJsThread);
      assert.ok("text" in onWorker && onWorker.text.includes("Thanks!"), JSON.stringify(onWorker).slice(0, 300));
    });
  }

  test("a template's own refusal is the same BadRequestError from the worker", async () => {
    const template = ChatTemplate.cached("{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tool results here') }}{% endif %}{{ m.content }}{% endfor %}");
    const options: ChatRenderOptions = { messages: conversation(OFF_THREAD_MESSAGES, true) };
    assert.deepEqual(await outcome(() => renderChat(template, options)), { error: "no tool results here", status: 400 });
    assert.deepEqual(await outcome(() => template.render(options)), { error: "no tool results here", status: 400 });
  });

  test("the event loop runs while a 4,096-message conversation renders; a short one renders on the JS thread", async () => {
    const template = ChatTemplate.cached(realTemplate("Qwen-Qwen2.5-7B-Instruct"));
    const ticksDuring = async (messages: ChatMessage[]) => {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      try {
        await renderChat(template, { messages, now: NOW });
      } finally {
        clearInterval(timer);
      }
      return ticks;
    };
    const long = Array.from({ length: 4096 }, (_, i): ChatMessage => ({ role: i % 2 ? "assistant" : "user", content: `message ${i}` }));
    assert.ok((await ticksDuring(long)) > 0, "timers fired while it rendered");
    // Rendered before renderChat returns: no timer can fire before its result is taken.
    assert.equal(await ticksDuring(long.slice(0, OFF_THREAD_MESSAGES - 1)), 0);
  });
});
