// Long outputs (docs/RELIABILITY.md): clients asking for unlimited tokens (`num_predict: -1`)
// are stopped by the context limit, or by the operator's `--max-tokens`, each with its final
// chunk, and leave nothing running. Real engine and server, stories260K at a 192-token context.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { Engine } from "../src/engine/engine.js";
import { startServer, type RunningServer } from "../src/server/index.js";
import { storiesPath } from "./helpers/models.js";
import { createStoriesChat } from "./helpers/real-server.js";

const CONTEXT = 192;
const MAX_TOKENS = 12;

/** The final NDJSON chunks of 4 streamed /api/generate calls at num_predict -1 (sampled, not greedy: stories260K's greedy story ends with EOS well before the limit). */
async function fourUnlimited(port: number): Promise<Array<Record<string, any>>> {
  return Promise.all(Array.from({ length: 4 }, async (_, i) => {
    const res = await fetch(`http://127.0.0.1:${port}/api/generate`, {
      method: "POST",
      body: JSON.stringify({ model: storiesPath, prompt: "Once upon a time", options: { num_predict: -1, temperature: 1.5, seed: i } }),
    });
    assert.equal(res.status, 200);
    return (await res.text()).trim().split("\n").map((line) => JSON.parse(line)).at(-1);
  }));
}

async function postJson(port: number, route: string, body: unknown): Promise<Record<string, any>> {
  const res = await fetch(`http://127.0.0.1:${port}${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text);
}

describe("long outputs", () => {
  let engine: Engine;
  let server: RunningServer;
  before(async () => {
    engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-long-")), parallel: 4, contextLength: CONTEXT });
    server = await startServer({ engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "1mb" }, logger: pino({ level: "silent" }) });
  });
  after(async () => {
    await server.close();
    await engine.close();
  });

  test("4 clients at num_predict -1 are stopped by the context limit, each with its final chunk", { timeout: 300_000 }, async () => {
    const finals = await fourUnlimited(server.port);
    for (const final of finals) {
      assert.equal(final.done, true);
      assert.ok(final.done_reason === "length" || final.done_reason === "stop", final.done_reason);
      assert.ok(final.prompt_eval_count + final.eval_count <= CONTEXT, `${final.prompt_eval_count} + ${final.eval_count} tokens`);
    }
    assert.ok(finals.some((final) => final.done_reason === "length"), "at least one ran into the context limit");
    assert.match(engine.metrics(), /^vllm:num_requests_running\{[^}]*\} 0$/m);
  });

  describe("with the operator's --max-tokens", () => {
    let capped: Engine;
    let cappedServer: RunningServer;
    before(async () => {
      capped = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-max-tokens-")), parallel: 4, contextLength: CONTEXT, maxTokens: MAX_TOKENS });
      cappedServer = await startServer({ engine: capped, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "1mb" }, logger: pino({ level: "silent" }) });
      await createStoriesChat(`http://127.0.0.1:${cappedServer.port}`);
    });
    after(async () => {
      await cappedServer.close();
      await capped.close();
    });

    test("4 clients at num_predict -1 are stopped by it, each with its final chunk", { timeout: 300_000 }, async () => {
      const finals = await fourUnlimited(cappedServer.port);
      for (const final of finals) {
        assert.equal(final.done, true);
        assert.ok(final.eval_count <= MAX_TOKENS, `${final.eval_count} tokens`);
        assert.ok(final.done_reason === "length" || final.done_reason === "stop", final.done_reason);
      }
      assert.ok(finals.some((final) => final.done_reason === "length" && final.eval_count === MAX_TOKENS), "at least one ran into the cap");
      assert.match(capped.metrics(), /^vllm:num_requests_running\{[^}]*\} 0$/m);
    });

    test("caps num_predict, max_tokens, max_completion_tokens and max_output_tokens on every API", { timeout: 300_000 }, async () => {
      const port = cappedServer.port;
      const asked = 100;
      const user = [{ role: "user", content: "Once upon a time" }];
      const sampled = { temperature: 1, seed: 3 }; // Anthropic takes at most 1
      const ollama = await postJson(port, "/api/chat", { model: "stories-chat", messages: user, stream: false, options: { num_predict: asked, ...sampled } });
      const completion = await postJson(port, "/v1/completions", { model: "stories-chat", prompt: "Once upon a time", max_tokens: asked, ...sampled });
      const chat = await postJson(port, "/v1/chat/completions", { model: "stories-chat", messages: user, max_completion_tokens: asked, ...sampled });
      const responses = await postJson(port, "/v1/responses", { model: "stories-chat", input: "Once upon a time", max_output_tokens: asked, ...sampled });
      const anthropic = await postJson(port, "/v1/messages", { model: "stories-chat", messages: user, max_tokens: asked, ...sampled });
      const generated = [ollama.eval_count, completion.usage.completion_tokens, chat.usage.completion_tokens, responses.usage.output_tokens, anthropic.usage.output_tokens];
      for (const count of generated) assert.ok(count >= 1 && count <= MAX_TOKENS, `generated ${JSON.stringify(generated)}`);
    });
  });
});
