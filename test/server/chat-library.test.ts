// Chat requests with tools over the HTTP APIs, on random-weight fixture models carrying the
// bundle's real chat templates (tokenizer.chat_template): a request the model may answer with a
// call is prompted by llama.cpp's chat library; a forced call (tool_choice required: the library's
// grammar for the family's syntax) comes back as tool_calls on all four APIs, exactly one with
// parallel_tool_calls false; with tool_choice auto, a trigger the model writes (driven there by
// logit_bias) hands decoding to the lazy grammar and the call comes back as tool_calls; an
// answer ends on the library's extra stop string for its family; a template that throws is a 400.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { ChatLibrary } from "../../src/chat/chat-library.js";
import { Engine } from "../../src/engine/engine.js";
import { readGgufHeader } from "../../src/gguf/reader.js";
import { vocabPath, writeSyntheticModel } from "../../src/gguf/synthetic.js";
import { startServer, type RunningServer } from "../../src/server/index.js";
import { repoRoot } from "../helpers/models.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "vllama-chat-library-"));
const template = (name: string) => readFileSync(path.join(repoRoot, "deps", "llama.cpp-v0.5.0", "models", "templates", `${name}.jinja`), "utf8");

/** Families by template; each becomes a model of its own name. */
// A forced step of a random model is grammar-masked over Qwen2's 151,936 tokens, 0.2-0.4 s a
// token on this 2-core machine (2026-12-02): two families here, the per-family parses are in
// test/chat/chat-library.test.ts.
const FAMILIES = ["Qwen-Qwen2.5-7B-Instruct", "mistralai-Mistral-Nemo-Instruct-2407"];

/**
 * Qwen2's tokens that are whitespace only (byte-level BPE: Ġ space, Ċ newline, ĉ tab, č return).
 * The random weights favour whitespace wherever the grammar allows it (a blank or a newline
 * between a call's parts, src/chat/tool-call-grammar.ts): biased away, a forced call takes the
 * fewest tokens.
 */
async function qwen2WhitespaceTokens(): Promise<number[]> {
  const header = await readGgufHeader(vocabPath("qwen2"));
  const tokens = header.metadata.get("tokenizer.ggml.tokens");
  assert.equal(tokens?.type, "array");
  return (tokens.value as string[]).flatMap((text, id) => (/^[ĠĊĉč]+$/.test(text) ? [id] : []));
}
/**
 * Qwen2.5's tool-call tokens over the [PAD] slots of the bundle's Qwen2 vocabulary, where
 * Qwen2.5's own vocabulary has them: `<tool_call>` is then one token, as Qwen2.5 writes it.
 */
const TOOL_CALL_TOKEN = 151657;
const QWEN25_TOOL_TOKENS = { [TOOL_CALL_TOKEN]: "<tool_call>", 151658: "</tool_call>" };
/** Qwen2's "\n" token. */
const NEWLINE_TOKEN = 198;

/** A family for which the library adds a stop string: its answers end at "</assistant>". */
const EXTRA_STOP_FAMILY = "poolside-Laguna-XS.2";
/** Qwen2's end-of-sequence tokens (<|endoftext|>, <|im_end|>). */
const QWEN2_END_TOKENS = [151643, 151645];

const modelName = (family: string) => family.toLowerCase().replace(/[^a-z0-9-]/g, "-");

// An enum argument keeps the forced call short whatever the random weights prefer.
const tool = {
  type: "function" as const,
  function: { name: "get_forecast", description: "Forecast", parameters: { type: "object", properties: { unit: { type: "string", enum: ["c", "f"] } }, required: ["unit"] } },
};
const messages = [{ role: "user" as const, content: "What is the forecast?" }];

describe("chat requests with tools over real templates, over HTTP", () => {
  let engine: Engine;
  let server: RunningServer;
  let url: string;
  const post = async (route: string, body: object) => {
    const res = await fetch(`${url}${route}`, { method: "POST", body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  };

  before(async () => {
    engine = new Engine({ modelsDir: path.join(dir, "store"), parallel: 4 });
    server = await startServer({ engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "1mb" }, logger: pino({ level: "silent" }) });
    url = `http://127.0.0.1:${server.port}`;
    const fixtures: Array<[string, string]> = [...[...FAMILIES, EXTRA_STOP_FAMILY].map((f) => [modelName(f), template(f)] as [string, string]),
      ["raising", "{% if tools %}{{ raise_exception('this template takes no tools') }}{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}"]];
    for (const [name, chatTemplate] of fixtures) {
      const out = path.join(dir, `${name}.gguf`);
      await writeSyntheticModel({ preset: "tiny-qwen2", type: "f16", out, seed: 3, chatTemplate, controlTokens: QWEN25_TOOL_TOKENS });
      const created = await post("/api/create", { model: name, from: out, stream: false });
      assert.equal(created.status, 200, JSON.stringify(created.body));
    }
  });
  after(async () => {
    await server.close();
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a request with tools is prompted by llama.cpp's chat library, as llama-server would prompt it", async () => {
    const model = modelName("Qwen-Qwen2.5-7B-Instruct");
    const { status, body } = await post("/api/chat", { model, messages, tools: [tool], stream: false, options: { num_predict: 1 } });
    assert.equal(status, 200, JSON.stringify(body));
    const library = await ChatLibrary.cached(template("Qwen-Qwen2.5-7B-Instruct"), "", "");
    const { params } = await library!.apply({ messages, tools: [tool], enableThinking: true });
    assert.match(params.prompt, /<tool_call>/);
    const { tokens } = await engine.tokenize({ model, content: params.prompt });
    assert.equal(body.prompt_eval_count, tokens.length);
  });

  test("/api/chat with tool_choice required gets the call back as tool_calls", async () => {
    const compact = Object.fromEntries((await qwen2WhitespaceTokens()).map((id) => [id, -100]));
    const answers = await Promise.all(FAMILIES.map((family) => post("/api/chat", {
      model: modelName(family), messages, tools: [tool], tool_choice: "required", stream: false, options: { num_predict: 120, temperature: 0, logit_bias: compact },
    })));
    answers.forEach(({ status, body }, i) => {
      const family = FAMILIES[i]!;
      assert.equal(status, 200, `${family}: ${JSON.stringify(body)}`);
      const calls: Array<{ function: { name: string; arguments: { unit: string } } }> = body.message.tool_calls ?? [];
      assert.ok(calls.length >= 1, `${family}: ${JSON.stringify(body.message)}`);
      for (const call of calls) {
        assert.equal(call.function.name, "get_forecast", family);
        assert.ok(["c", "f"].includes(call.function.arguments.unit), `${family}: ${JSON.stringify(call)}`);
      }
    });
  });

  test("the OpenAI, Anthropic and Responses APIs get the forced call, streamed and not", async () => {
    const model = modelName("Qwen-Qwen2.5-7B-Instruct");
    // One batch: the four requests run side by side.
    const [openai, anthropic, responses, res] = await Promise.all([
      post("/v1/chat/completions", { model, messages, tools: [tool], tool_choice: "required", max_tokens: 120, temperature: 0 }),
      post("/v1/messages", {
        model, max_tokens: 120, temperature: 0, messages, tool_choice: { type: "any" },
        tools: [{ name: "get_forecast", description: "Forecast", input_schema: tool.function.parameters }],
      }),
      post("/v1/responses", {
        model, input: "What is the forecast?", max_output_tokens: 120, temperature: 0, tool_choice: "required",
        tools: [{ type: "function", name: "get_forecast", description: "Forecast", parameters: tool.function.parameters }],
      }),
      fetch(`${url}/v1/chat/completions`, {
        method: "POST", body: JSON.stringify({ model, messages, tools: [tool], tool_choice: "required", max_tokens: 120, temperature: 0, stream: true }),
      }),
    ]);
    assert.equal(openai.status, 200, JSON.stringify(openai.body));
    assert.equal(openai.body.choices[0].finish_reason, "tool_calls");
    assert.equal(openai.body.choices[0].message.tool_calls[0].function.name, "get_forecast");
    assert.equal(anthropic.status, 200, JSON.stringify(anthropic.body));
    assert.equal(anthropic.body.stop_reason, "tool_use");
    assert.equal(anthropic.body.content.find((b: { type: string }) => b.type === "tool_use").name, "get_forecast");
    assert.equal(responses.status, 200, JSON.stringify(responses.body));
    assert.equal(responses.body.output.find((o: { type: string }) => o.type === "function_call").name, "get_forecast");
    const chunks = (await res.text()).split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)));
    const streamed = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    assert.equal(streamed[0]?.function?.name, "get_forecast", JSON.stringify(chunks));
  });

  test("parallel_tool_calls false: a forced call is exactly one call on /api/chat and OpenAI's chat", async () => {
    const model = modelName("Qwen-Qwen2.5-7B-Instruct");
    const compact = Object.fromEntries((await qwen2WhitespaceTokens()).map((id) => [id, -100]));
    const [ollama, openai] = await Promise.all([
      post("/api/chat", {
        model, messages, tools: [tool], tool_choice: "required", parallel_tool_calls: false, stream: false,
        options: { num_predict: 60, temperature: 0, logit_bias: compact },
      }),
      post("/v1/chat/completions", { model, messages, tools: [tool], tool_choice: "required", parallel_tool_calls: false, max_tokens: 60, temperature: 0, logit_bias: compact }),
    ]);
    assert.equal(ollama.status, 200, JSON.stringify(ollama.body));
    assert.equal(ollama.body.message.tool_calls?.length, 1, JSON.stringify(ollama.body.message));
    // The grammar allows nothing after the one call: the answer ends there, well before the limit.
    assert.equal(ollama.body.done_reason, "stop");
    assert.equal(openai.status, 200, JSON.stringify(openai.body));
    assert.equal(openai.body.choices[0].finish_reason, "tool_calls");
    assert.equal(openai.body.choices[0].message.tool_calls.length, 1);
  });

  test("tool_choice auto: the trigger the model writes hands decoding to the lazy grammar, and the call comes back as tool_calls, streamed and not", async () => {
    // Qwen2.5's trigger is the text "<tool_call>\n". The bias leaves the random model two tokens,
    // `<tool_call>` and "\n" (every other blank banned), and the frequency penalty makes it
    // alternate between them, so the trigger appears within a few tokens; from there the lazy
    // grammar writes the call (the newline's bias only fills the call's optional blank lines) and,
    // with parallel_tool_calls false, ends the answer after it.
    const model = modelName("Qwen-Qwen2.5-7B-Instruct");
    const logit_bias = { ...Object.fromEntries((await qwen2WhitespaceTokens()).map((id) => [id, -100])), [TOOL_CALL_TOKEN]: 100, [NEWLINE_TOKEN]: 100 };
    const sampling = { temperature: 0, frequency_penalty: 2, logit_bias };
    const openai = { model, messages, tools: [tool], tool_choice: "auto", parallel_tool_calls: false, max_tokens: 80, ...sampling };
    const ollama = { model, messages, tools: [tool], parallel_tool_calls: false, options: { num_predict: 80, ...sampling } };
    // One batch: the four requests run side by side.
    const [completion, streamed, chat, chatStreamed] = await Promise.all([
      post("/v1/chat/completions", openai),
      fetch(`${url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ ...openai, stream: true }) }).then((r) => r.text()),
      post("/api/chat", { ...ollama, stream: false }),
      fetch(`${url}/api/chat`, { method: "POST", body: JSON.stringify({ ...ollama, stream: true }) }).then((r) => r.text()),
    ]);
    const isForecast = (call: { function: { name: string; arguments: string | { unit: string } } }) => {
      const args = typeof call.function.arguments === "string" ? JSON.parse(call.function.arguments) : call.function.arguments;
      return call.function.name === "get_forecast" && ["c", "f"].includes(args.unit);
    };
    assert.equal(completion.status, 200, JSON.stringify(completion.body));
    assert.equal(completion.body.choices[0].finish_reason, "tool_calls", JSON.stringify(completion.body));
    assert.equal(completion.body.choices[0].message.tool_calls.length, 1);
    assert.ok(isForecast(completion.body.choices[0].message.tool_calls[0]), JSON.stringify(completion.body.choices[0].message));
    const chunks = streamed.split("\n").filter((l) => l.startsWith("data: {")).map((l) => JSON.parse(l.slice(6)));
    const streamedCalls = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    assert.equal(streamedCalls.length, 1, streamed);
    assert.equal(streamedCalls[0].index, 0);
    assert.match(streamedCalls[0].id, /\S/);
    assert.ok(isForecast(streamedCalls[0]), streamed);
    assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason, "tool_calls");

    assert.equal(chat.status, 200, JSON.stringify(chat.body));
    assert.equal(chat.body.message.tool_calls?.length, 1, JSON.stringify(chat.body.message));
    assert.ok(isForecast(chat.body.message.tool_calls[0]), JSON.stringify(chat.body.message));
    assert.equal(chat.body.done_reason, "stop");
    const lines = chatStreamed.trim().split("\n").map((l) => JSON.parse(l));
    const chatCalls = lines.flatMap((l) => l.message?.tool_calls ?? []);
    assert.equal(chatCalls.length, 1, chatStreamed);
    assert.ok(isForecast(chatCalls[0]), chatStreamed);
    assert.equal(lines.at(-1).done, true);
  });

  test("an answer ends on the family's extra stop string from the chat library: finish_reason stop, the string not in the answer", async () => {
    // The bias leaves the random model the three tokens of "</assistant>" (its end of sequence
    // banned), and the frequency penalty makes it cycle through them until they come in order.
    const model = modelName(EXTRA_STOP_FAMILY);
    const stopTokens = (await engine.tokenize({ model, content: "</assistant>" })).tokens;
    assert.equal(stopTokens.length, 3);
    const logit_bias = { ...Object.fromEntries(stopTokens.map((t) => [t, 100])), ...Object.fromEntries(QWEN2_END_TOKENS.map((t) => [t, -100])) };
    const body = { model, messages, tools: [tool], max_tokens: 60, temperature: 0, frequency_penalty: 2, logit_bias };
    const [openai, ollama] = await Promise.all([
      post("/v1/chat/completions", body),
      post("/api/chat", { model, messages, tools: [tool], stream: false, options: { num_predict: 60, temperature: 0, frequency_penalty: 2, logit_bias } }),
    ]);
    assert.equal(openai.status, 200, JSON.stringify(openai.body));
    assert.equal(openai.body.choices[0].finish_reason, "stop", JSON.stringify(openai.body));
    assert.ok(openai.body.usage.completion_tokens < 60);
    assert.doesNotMatch(JSON.stringify(openai.body.choices[0].message), /<\/assistant>/);
    assert.equal(ollama.status, 200, JSON.stringify(ollama.body));
    assert.equal(ollama.body.done_reason, "stop");
    assert.ok(ollama.body.eval_count < 60);
    assert.doesNotMatch(JSON.stringify(ollama.body.message), /<\/assistant>/);
  });

  test("a template that throws on tools is a 400 in each API's shape with its message; other requests still run", async () => {
    const ollama = await post("/api/chat", { model: "raising", messages, tools: [tool], stream: false });
    assert.equal(ollama.status, 400);
    assert.match(ollama.body.error, /this template takes no tools/);
    const openai = await post("/v1/chat/completions", { model: "raising", messages, tools: [tool] });
    assert.equal(openai.status, 400);
    assert.match(openai.body.error.message, /this template takes no tools/);
    const anthropic = await post("/v1/messages", { model: "raising", max_tokens: 8, messages, tools: [{ name: "get_forecast", input_schema: tool.function.parameters }] });
    assert.equal(anthropic.status, 400);
    assert.equal(anthropic.body.type, "error");
    assert.match(anthropic.body.error.message, /this template takes no tools/);
    const responses = await post("/v1/responses", { model: "raising", input: "hi", tools: [{ type: "function", name: "get_forecast", parameters: tool.function.parameters }] });
    assert.equal(responses.status, 400);
    assert.match(responses.body.error.message, /this template takes no tools/);

    const served = await post("/api/chat", { model: "raising", messages, stream: false, options: { num_predict: 4 } });
    assert.equal(served.status, 200, JSON.stringify(served.body));
  });
});
