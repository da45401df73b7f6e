// Long outputs (docs/RELIABILITY.md): clients asking for unlimited tokens (`num_predict: -1`)
// are stopped by the context limit, each with its final chunk, and leave nothing running.
// Real engine and server, stories260K at a 192-token context.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { Engine } from "../src/engine/engine.js";
import { startServer, type RunningServer } from "../src/server/index.js";
import { storiesPath } from "./helpers/models.js";

const CONTEXT = 192;

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
    const finals = await Promise.all(Array.from({ length: 4 }, async (_, i) => {
      const res = await fetch(`http://127.0.0.1:${server.port}/api/generate`, {
        method: "POST",
        // Sampled, not greedy: stories260K's greedy story ends with EOS well before the limit.
        body: JSON.stringify({ model: storiesPath, prompt: "Once upon a time", options: { num_predict: -1, temperature: 1.5, seed: i } }),
      });
      assert.equal(res.status, 200);
      return (await res.text()).trim().split("\n").map((line) => JSON.parse(line)).at(-1);
    }));
    for (const final of finals) {
      assert.equal(final.done, true);
      assert.ok(final.done_reason === "length" || final.done_reason === "stop", final.done_reason);
      assert.ok(final.prompt_eval_count + final.eval_count <= CONTEXT, `${final.prompt_eval_count} + ${final.eval_count} tokens`);
    }
    assert.ok(finals.some((final) => final.done_reason === "length"), "at least one ran into the context limit");
    assert.match(engine.metrics(), /^vllm:num_requests_running\{[^}]*\} 0$/m);
  });
});
