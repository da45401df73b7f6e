// The chat library's grammars as the native sampler takes them (src/chat/tool-call-grammar.ts):
// tool_choice auto is lazy on the family's trigger, a forced call is the call from the first token
// (no text before it) and exactly one call with parallel_tool_calls false; every family's grammar,
// so narrowed, still parses in llama.cpp's grammar parser, its trigger patterns in std::regex.
// And the rest of what a library prompt brings (src/chat/prompt.ts): the family's extra stop
// strings, and reasoning split off as llama-server does unless the request turns thinking off.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { Tool } from "../../src/api/shared-fields.js";
import { ChatLibrary } from "../../src/chat/chat-library.js";
import { chatAnswerParser } from "../../src/chat/output.js";
import { buildChatPrompt } from "../../src/chat/prompt.js";
import { narrowedRoot, toolCallGrammar } from "../../src/chat/tool-call-grammar.js";
import { createContext, initBackend, loadModel, type NativeContext, type NativeModel, type SamplerParams } from "../../src/native/index.js";
import { storiesPath } from "../helpers/models.js";

const TEMPLATES = path.join(import.meta.dirname, "..", "..", "deps", "llama.cpp-v0.5.0", "models", "templates");
const messages = [{ role: "user" as const, content: "What is the forecast?" }];
const forecast: Tool = {
  type: "function",
  function: { name: "get_forecast", parameters: { type: "object", properties: { unit: { type: "string", enum: ["c", "f"] } }, required: ["unit"] } },
};

async function library(name: string): Promise<ChatLibrary> {
  const lib = await ChatLibrary.cached(readFileSync(path.join(TEMPLATES, `${name}.jinja`), "utf8"), "<s>", "</s>");
  assert.ok(lib, `${name} parses in the library`);
  return lib;
}

/** A tokenizer in which only `<tool_call>` and `[TOOL_CALLS]` are single tokens (7 and 8). */
const tokenizer = {
  tokenize: (text: string) => Int32Array.from(text === "<tool_call>" ? [7] : text === "[TOOL_CALLS]" ? [8] : [...text].map((c) => c.codePointAt(0)!)),
};

test("auto: a lazy grammar on the family's trigger; a trigger word that is one preserved token triggers on that token", async () => {
  const qwen = toolCallGrammar((await (await library("Qwen-Qwen2.5-7B-Instruct")).apply({ messages, tools: [forecast], enableThinking: false })).params, tokenizer, true);
  assert.deepEqual(qwen.grammar?.grammarTriggers, { patterns: ["<tool_call>\n"], tokens: [] });
  assert.equal(qwen.grammar?.grammarPrefix, undefined);
  assert.deepEqual(qwen.preservedTokens, [7]);
  const mistral = toolCallGrammar((await (await library("mistralai-Mistral-Nemo-Instruct-2407")).apply({ messages, tools: [forecast], enableThinking: false })).params, tokenizer, true);
  assert.deepEqual(mistral.grammar?.grammarTriggers, { patterns: [], tokens: [8] });
  assert.deepEqual(mistral.preservedTokens, [8]);
});

test("forced: the library's required grammar after its generation prompt, without the text it lets come first; one call without parallel calls", async () => {
  const qwen = await library("Qwen-Qwen2.5-7B-Instruct");
  const forced = async (parallel: boolean) =>
    toolCallGrammar((await qwen.apply({ messages, tools: [forecast], enableThinking: false, toolChoice: "required", parallelToolCalls: parallel })).params, tokenizer, parallel);
  const many = await forced(true);
  assert.equal(many.grammar?.grammarPrefix, "<|im_start|>assistant\n");
  assert.equal(many.grammar?.grammarTriggers, undefined);
  assert.match(many.grammar!.grammar, /^root ::= "<\|im_start\|>assistant\\n" space tool-calls$/m);
  assert.match((await forced(false)).grammar!.grammar, /^root ::= "<\|im_start\|>assistant\\n" space tool-call$/m);
  // One blank or one newline between a call's parts, where the library allows 2 newlines and 20 blanks.
  assert.match(many.grammar!.grammar, /^space ::= \| " " \| "\\n"$/m);
  assert.doesNotMatch(many.grammar!.grammar, /\{0,20\}/);
  const lazy = (await qwen.apply({ messages, tools: [forecast], enableThinking: false, parallelToolCalls: false })).params;
  assert.match(toolCallGrammar(lazy, tokenizer, false).grammar!.grammar, /^root ::= tool-call \| tool-call$/m);
});

test("narrowing keeps groups, strings and character classes whole", () => {
  const grammar = 'x ::= "a"\nroot ::= "<s> (" space ("<think>" until-4 "</think>")? until-9? [ ()] tool-calls\nuntil-9 ::= [^<]*';
  assert.equal(narrowedRoot(grammar, { textFirst: false, manyCalls: false }).split("\n")[1], 'root ::= "<s> (" space ("<think>" until-4 "</think>")? [ ()] tool-call');
  assert.equal(narrowedRoot(grammar, { textFirst: true, manyCalls: true }), grammar);
});

let model: NativeModel;
let ctx: NativeContext;
before(async () => {
  initBackend("cpu");
  model = await loadModel(storiesPath);
  ctx = await createContext(model, { kvCells: 64, nSeqMax: 1, batchCapacity: 16, nUbatch: 16 });
});
after(async () => {
  await ctx.dispose();
  await model.dispose();
});

test("every family's grammar, auto and forced, narrowed, parses in llama.cpp, its triggers too", async () => {
  const greedy: SamplerParams = { temperature: 0, topK: 40, topP: 1, minP: 0, typicalP: 1, seed: 1, repeatLastN: 64, repeatPenalty: 1, presencePenalty: 0, frequencyPenalty: 0 };
  const names = readdirSync(TEMPLATES).filter((f) => f.endsWith(".jinja")).map((f) => f.slice(0, -".jinja".length));
  let checked = 0;
  const failures: string[] = [];
  for (const name of names) {
    const lib = await ChatLibrary.cached(readFileSync(path.join(TEMPLATES, `${name}.jinja`), "utf8"), "<s>", "</s>");
    for (const toolChoice of ["auto", "required"] as const) {
      for (const parallel of [true, false]) {
        const applied = await lib?.apply({ messages, tools: [forecast], enableThinking: false, toolChoice, parallelToolCalls: parallel }).catch(() => undefined);
        if (!applied || applied.params.content_only || applied.params.grammar === "") continue;
        // The grammar prefix is the family's turn header, text the small vocabulary need not spell as the grammar does.
        const { grammar } = toolCallGrammar(applied.params, model, parallel);
        try {
          ctx.setSampler(0, { ...greedy, grammar: grammar!.grammar, ...(grammar!.grammarTriggers ? { grammarTriggers: grammar!.grammarTriggers } : {}) });
          checked++;
        } catch (error) {
          failures.push(`${name} ${toolChoice} parallel=${parallel}: ${(error as Error).message}`);
        }
      }
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(checked >= 4 * 17, `${checked} grammars`);
});

test("a library prompt brings the family's extra stop strings", async () => {
  const template = readFileSync(path.join(TEMPLATES, "poolside-Laguna-XS.2.jinja"), "utf8");
  const prompt = await buildChatPrompt({ model: "m", messages, tools: [forecast] }, { template, messages: [] }, model);
  assert.deepEqual(prompt.stop, ["</assistant>"]);
  const qwen = readFileSync(path.join(TEMPLATES, "Qwen-Qwen2.5-7B-Instruct.jinja"), "utf8");
  assert.equal((await buildChatPrompt({ model: "m", messages, tools: [forecast] }, { template: qwen, messages: [] }, model)).stop, undefined);
});

test("reasoning is split off as llama-server does by default and when asked, and stays content when thinking is off", async () => {
  const template = readFileSync(path.join(TEMPLATES, "Qwen-Qwen3-0.6B.jinja"), "utf8");
  const read = async (think: boolean | undefined) => {
    const { output } = await buildChatPrompt({ model: "m", messages, tools: [forecast], ...(think !== undefined ? { think } : {}) }, { template, messages: [] }, model);
    const parser = chatAnswerParser(output);
    const pushed = await parser.push("<think>\nThe user wants a forecast.\n</think>\n\nIt is sunny.");
    const last = await parser.finish();
    return { thinking: pushed.thinking + last.thinking, content: pushed.content + last.content };
  };
  // The library keeps the newline before the closing tag.
  assert.deepEqual(await read(undefined), { thinking: "The user wants a forecast.\n", content: "It is sunny." });
  assert.deepEqual(await read(true), await read(undefined));
  const off = await read(false);
  assert.equal(off.thinking, "");
  assert.match(off.content, /The user wants a forecast\.[\s\S]*It is sunny\./);
});
