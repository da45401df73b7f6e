// Several choices of one OpenAI request on the real engine (stories260K), through the official
// client: a list of prompts on /v1/completions (one choice each, index order), and n > 1 on
// /v1/completions and /v1/chat/completions (choice i samples with seed + i; the prompt's cells
// are computed once and shared).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { OTHER_PROMPTS, REFERENCE_PROMPT, REFERENCE_TEXT, storiesPath } from "../helpers/models.js";
import { startRealServer, type RealServer } from "../helpers/real-server.js";

const model = storiesPath;
// 45 tokens: two whole 16-token blocks that the choices share.
const LONG_PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big dog";

describe("several choices per request", () => {
  let server: RealServer;
  let openai: OpenAI;
  before(async () => {
    server = await startRealServer("choices");
    openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused" });
  });
  after(() => server.close());

  const complete = (prompt: string | string[], extra: object = {}) =>
    openai.completions.create({ model, prompt, max_tokens: 16, temperature: 0, ...extra, stream: false });
  const completeStreamed = (prompt: string | string[], extra: object = {}) =>
    openai.completions.create({ model, prompt, max_tokens: 16, temperature: 0, ...extra, stream: true });

  async function streamedTexts(stream: AsyncIterable<OpenAI.Completions.Completion>): Promise<{ texts: string[]; usage?: OpenAI.CompletionUsage }> {
    const texts: string[] = [];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      for (const c of chunk.choices) texts[c.index] = (texts[c.index] ?? "") + c.text;
      if (chunk.usage) usage = chunk.usage;
    }
    return { texts, usage };
  }

  test("a list of prompts: one choice each, in index order, as each alone", async () => {
    const prompts = [REFERENCE_PROMPT, ...OTHER_PROMPTS.slice(0, 4)];
    const alone: OpenAI.Completions.CompletionChoice[] = [];
    for (const p of prompts) alone.push((await complete(p)).choices[0]!);
    const together = await complete(prompts);
    assert.deepEqual(together.choices.map((c) => c.index), [0, 1, 2, 3, 4]);
    assert.deepEqual(together.choices.map((c) => c.text), alone.map((c) => c.text));
    assert.equal(together.choices[0]!.text, REFERENCE_TEXT.slice(0, together.choices[0]!.text.length));
    const singles = await Promise.all(prompts.map((p) => complete(p)));
    assert.equal(together.usage!.prompt_tokens, singles.reduce((sum, r) => sum + r.usage!.prompt_tokens, 0));
    assert.equal(together.usage!.completion_tokens, singles.reduce((sum, r) => sum + r.usage!.completion_tokens, 0));

    const { texts, usage } = await streamedTexts(await completeStreamed(prompts, { stream_options: { include_usage: true }, echo: true }));
    assert.deepEqual(texts, prompts.map((p, i) => p + alone[i]!.text));
    assert.deepEqual(usage, together.usage);
  });

  test("n > 1 on /v1/completions: choice i is the request with seed + i, the prompt counted and computed once", async () => {
    const sampled = { temperature: 1, max_tokens: 12 };
    const singles: string[] = [];
    for (let i = 0; i < 4; i++) singles.push((await complete(LONG_PROMPT, { ...sampled, seed: 5 + i })).choices[0]!.text);
    assert.ok(new Set(singles).size > 1, "different seeds sample different texts");
    const hitsBefore = kvStats().prefixHits;
    const r = await complete(LONG_PROMPT, { ...sampled, seed: 5, n: 4 });
    const shared = kvStats().prefixHits - hitsBefore;
    assert.deepEqual(r.choices.map((c) => c.text), singles);
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
    const promptTokens = r.usage!.prompt_tokens;
    assert.ok(promptTokens > 32, `prompt of ${promptTokens} tokens`);
    // Every choice reuses the prompt's whole blocks (the first from the single requests above).
    const wholeBlocks = Math.floor((promptTokens - 1) / 16) * 16;
    assert.equal(shared, 4 * wholeBlocks);

    const { texts } = await streamedTexts(await completeStreamed(LONG_PROMPT, { ...sampled, seed: 5, n: 4 }));
    assert.deepEqual(texts, singles);
  });

  test("n > 1 on /v1/chat/completions, streamed with usage: one stream of indexed choices", async () => {
    const messages = [{ role: "user" as const, content: "Once upon a time" }];
    const body = { model, messages, max_tokens: 10, temperature: 1, seed: 11 };
    const singles = [];
    for (let i = 0; i < 3; i++) singles.push((await openai.chat.completions.create({ ...body, seed: 11 + i })).choices[0]!.message.content);
    const r = await openai.chat.completions.create({ ...body, n: 3 });
    assert.deepEqual(r.choices.map((c) => c.message.content), singles);
    const texts: string[] = [];
    const finished: string[] = [];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of await openai.chat.completions.create({ ...body, n: 3, stream: true, stream_options: { include_usage: true } })) {
      for (const c of chunk.choices) {
        texts[c.index] = (texts[c.index] ?? "") + (c.delta.content ?? "");
        if (c.finish_reason) finished[c.index] = c.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.deepEqual(texts, singles);
    assert.equal(finished.length, 3);
    assert.deepEqual(usage, r.usage);
    const single = await openai.chat.completions.create({ ...body, seed: 11 });
    assert.equal(r.usage!.prompt_tokens, single.usage!.prompt_tokens);
  });

  test("min_tokens holds off the end of sequence on the real model, in the sampler", async () => {
    // The bias makes </s> (token 2) the model's choice at every step: it ends at once, and with
    // min_tokens only after that many of the greedy reference's own tokens.
    const endsNow = { max_tokens: 16, logit_bias: { "2": 100 } };
    const free = await complete(REFERENCE_PROMPT, endsNow);
    assert.equal(free.usage!.completion_tokens, 0);
    assert.equal(free.choices[0]!.finish_reason, "stop");
    const held = await complete(REFERENCE_PROMPT, { ...endsNow, min_tokens: 5 });
    assert.equal(held.usage!.completion_tokens, 5);
    assert.equal(held.choices[0]!.finish_reason, "stop");
    assert.ok(held.choices[0]!.text.length > 0 && REFERENCE_TEXT.startsWith(held.choices[0]!.text), held.choices[0]!.text);
  });

  function kvStats() {
    return storiesStats(server).kv;
  }
});

describe("n = 8 over HTTP computes the prompt once, with the prefix cache off", () => {
  let server: RealServer;
  let openai: OpenAI;
  before(async () => {
    server = await startRealServer("choices-shared", { prefixCache: false, contextLength: 512 });
    openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused" });
  });
  after(() => server.close());

  // About 200 tokens. A choice's cells are computed in other batch shapes than a request's alone,
  // which moves its logits by rounding (the F16 KV cache): at temperature 1 over the whole
  // vocabulary, 1 of 24 choices of 16 tokens sampled another token (2026-12-02); 8 tokens from
  // the top 4 keep the comparison exact.
  const prompt = `${LONG_PROMPT}. `.repeat(4);
  const sampled = { model, max_tokens: 8, temperature: 1, top_k: 4 };
  const N = 8;

  /**
   * Prompt tokens the native steps computed for the responses of `run` (N choices in all), at
   * most: every token they decoded, less each choice's generated tokens but its last (never decoded).
   */
  async function promptTokensComputed(run: () => Promise<Array<{ usage?: OpenAI.CompletionUsage }>>): Promise<number> {
    const before = storiesStats(server).steps.tokens;
    const responses = await run();
    const generated = responses.reduce((sum, r) => sum + r.usage!.completion_tokens, 0);
    return storiesStats(server).steps.tokens - before - (generated - N);
  }

  test("/v1/completions: one prompt computation for 8 choices, each as a request with seed + i", async () => {
    const single = (seed: number) => openai.completions.create({ ...sampled, prompt, seed });
    const singles: OpenAI.Completions.Completion[] = [];
    for (let i = 0; i < N; i++) singles.push(await single(3 + i));
    const promptTokens = singles[0]!.usage!.prompt_tokens;
    assert.ok(promptTokens > 128, `a prompt of ${promptTokens} tokens`);
    let together: OpenAI.Completions.Completion | undefined;
    const computed = await promptTokensComputed(async () => [together = await openai.completions.create({ ...sampled, prompt, seed: 3, n: N })]);
    assert.deepEqual(together!.choices.map((c) => c.text), singles.map((s) => s.choices[0]!.text));
    assert.ok(computed <= promptTokens + N * 16, `${computed} prompt tokens computed for ${N} choices of ${promptTokens}`);
    // Without the sharing, each of 8 requests computes the whole prompt.
    const separately = await promptTokensComputed(() => Promise.all(Array.from({ length: N }, (_, i) => single(3 + i))));
    assert.ok(separately >= N * promptTokens, `${separately} prompt tokens computed for ${N} requests of ${promptTokens}`);
  });

  test("/v1/chat/completions: one prompt computation for 8 choices, each as a request with seed + i", async () => {
    const messages = [{ role: "user" as const, content: prompt }];
    const singles: OpenAI.Chat.ChatCompletion[] = [];
    for (let i = 0; i < N; i++) singles.push(await openai.chat.completions.create({ ...sampled, messages, seed: 9 + i }));
    const promptTokens = singles[0]!.usage!.prompt_tokens;
    let together: OpenAI.Chat.ChatCompletion | undefined;
    const computed = await promptTokensComputed(async () => [together = await openai.chat.completions.create({ ...sampled, messages, seed: 9, n: N })]);
    assert.deepEqual(together!.choices.map((c) => c.message.content), singles.map((s) => s.choices[0]!.message.content));
    assert.ok(computed <= promptTokens + N * 16, `${computed} prompt tokens computed for ${N} choices of ${promptTokens}`);
  });
});

function storiesStats(server: RealServer) {
  const stats = server.engine.stats().find((s) => s.name === storiesPath || s.name.endsWith("stories260K.gguf"));
  assert.ok(stats, JSON.stringify(server.engine.stats().map((s) => s.name)));
  return stats;
}

