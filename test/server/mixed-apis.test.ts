// 32 greedy requests over the four APIs at once (Ollama's generate and chat, OpenAI's chat
// completions, Anthropic's Messages, OpenAI's Responses) on the real engine with stories260K:
// each answer is the same text it is alone, and the reference text comes back unchanged.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { REFERENCE_PROMPT, REFERENCE_TEXT, storiesPath } from "../helpers/models.js";
import { startRealServer, type RealServer } from "../helpers/real-server.js";

const model = storiesPath;
const MAX_TOKENS = 24;

interface ApiCall {
  path: string;
  body: (prompt: string) => object;
  text: (reply: any) => string;
}

const APIS: Record<string, ApiCall> = {
  "ollama generate": {
    path: "/api/generate",
    body: (prompt) => ({ model, prompt, stream: false, options: { temperature: 0, num_predict: MAX_TOKENS } }),
    text: (r) => r.response,
  },
  "ollama chat": {
    path: "/api/chat",
    body: (prompt) => ({ model, messages: [{ role: "user", content: prompt }], stream: false, options: { temperature: 0, num_predict: MAX_TOKENS } }),
    text: (r) => r.message.content,
  },
  "openai chat": {
    path: "/v1/chat/completions",
    body: (prompt) => ({ model, messages: [{ role: "user", content: prompt }], temperature: 0, max_tokens: MAX_TOKENS }),
    text: (r) => r.choices[0].message.content,
  },
  "openai completions": {
    path: "/v1/completions",
    body: (prompt) => ({ model, prompt, temperature: 0, max_tokens: MAX_TOKENS }),
    text: (r) => r.choices[0].text,
  },
  "anthropic messages": {
    path: "/v1/messages",
    body: (prompt) => ({ model, max_tokens: MAX_TOKENS, temperature: 0, messages: [{ role: "user", content: prompt }] }),
    text: (r) => r.content.map((b: { text?: string }) => b.text ?? "").join(""),
  },
  "openai responses": {
    path: "/v1/responses",
    body: (prompt) => ({ model, input: prompt, temperature: 0, max_output_tokens: MAX_TOKENS }),
    text: (r) => r.output.flatMap((item: { content?: Array<{ text?: string }> }) => item.content ?? []).map((c: { text?: string }) => c.text ?? "").join(""),
  },
};

describe("four APIs at once", () => {
  let server: RealServer;
  before(async () => {
    server = await startRealServer("mixed-apis");
  });
  after(() => server.close());

  async function ask(api: string, prompt: string): Promise<string> {
    const call = APIS[api]!;
    const res = await fetch(server.url + call.path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(call.body(prompt)) });
    const reply = await res.json();
    assert.equal(res.status, 200, `${api}: ${JSON.stringify(reply)}`);
    return call.text(reply);
  }

  test("32 mixed greedy requests give the texts they give one at a time", async () => {
    const names = Object.keys(APIS);
    const requests = Array.from({ length: 32 }, (_, i) => ({
      api: names[i % names.length]!,
      // One prompt for all: greedy text is only reproducible where the model has no near-ties that
      // another batch composition flips (llama.cpp's kernels are not batch-invariant): stories260K
      // on the other prompts diverged after ~30 characters in 3 of 4 runs on 2026-12-02, with the
      // prebuilt CPU backend as with the patched one. Its reference prompt stays exact in any batch.
      prompt: REFERENCE_PROMPT,
    }));
    const alone = new Map<string, string>();
    for (const r of requests) {
      const key = `${r.api}|${r.prompt}`;
      if (!alone.has(key)) alone.set(key, await ask(r.api, r.prompt));
    }
    const together = await Promise.all(requests.map((r) => ask(r.api, r.prompt)));
    together.forEach((text, i) => assert.equal(text, alone.get(`${requests[i]!.api}|${requests[i]!.prompt}`), `request ${i} (${requests[i]!.api})`));
    // The raw-text APIs continue the prompt exactly as llama.cpp's server does.
    for (const api of ["ollama generate", "openai completions"]) {
      const text = alone.get(`${api}|${REFERENCE_PROMPT}`)!;
      assert.ok(text.length > 20 && REFERENCE_TEXT.startsWith(text), `${api}: ${JSON.stringify(text)}`);
    }
  });
});
