// The choices of one request (OpenAI's `n`: sequences started with one RequestInit.promptGroup)
// on the real stories260K model: the prompt is computed once, with the prefix cache on or off,
// and choice i (seed + i) samples what a request of its own with that seed samples.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import type { GenerateResponse } from "../../src/api/ollama.js";
import { Engine } from "../../src/engine/engine.js";
import { storiesPath } from "../helpers/models.js";

const model = storiesPath;
const emptyStore = mkdtempSync(path.join(os.tmpdir(), "vllama-choices-store-"));
// About 200 tokens: longer than stories260K's trained 128, so the engines get a longer context.
const PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends and her dog. ".repeat(6);
const N = 8;
const SEED = 21;
// Few tokens from the top 4: a choice's cells are computed in other batch shapes than a request's
// alone, and rounding in the F16 KV cache can move a sample over the whole vocabulary (1 of 24
// choices of 16 tokens at temperature 1 on 2026-12-02).
const sampled = (seed: number) => ({ temperature: 1, top_k: 4, num_predict: 8, seed });

const engines: Engine[] = [];
function newEngine(options: ConstructorParameters<typeof Engine>[0]): Engine {
  const e = new Engine({ modelsDir: emptyStore, contextLength: 1024, ...options });
  engines.push(e);
  return e;
}
after(async () => {
  for (const e of engines) await e.close();
});

const generate = (e: Engine, seed: number, promptGroup?: object): Promise<GenerateResponse> =>
  e.generate({ model, prompt: PROMPT, stream: false, options: sampled(seed) }, { promptGroup });

/**
 * Prompt tokens the engine's native steps computed while `run` ran, at most: every token the
 * steps decoded, less each answer's tokens but its last (decoded unless the answer ended at the
 * end of sequence, which is sampled but never decoded).
 */
async function promptTokensComputed(e: Engine, run: () => Promise<GenerateResponse[]>): Promise<{ computed: number; answers: GenerateResponse[] }> {
  const before = e.stats()[0]?.steps.tokens ?? 0;
  const answers = await run();
  const decoded = e.stats()[0]!.steps.tokens - before;
  return { computed: decoded - answers.reduce((sum, a) => sum + a.eval_count! - 1, 0), answers };
}

describe("engine: the choices of one request", () => {
  for (const prefixCache of [true, false]) {
    test(`n = ${N} computes the prompt once, as ${N} seeded requests sample (prefix cache ${prefixCache ? "on" : "off"})`, async () => {
      const e = newEngine({ prefixCache, parallel: N });
      const singles: GenerateResponse[] = [];
      for (let i = 0; i < N; i++) singles.push(await generate(e, SEED + i));
      assert.ok(new Set(singles.map((s) => s.response)).size > 1, "different seeds sample different texts");
      const promptLength = singles[0]!.prompt_eval_count!;
      assert.ok(promptLength > 128, `a prompt of ${promptLength} tokens`);

      const group = {};
      const { computed, answers } = await promptTokensComputed(e, () => Promise.all(Array.from({ length: N }, (_, i) => generate(e, SEED + i, group))));
      assert.deepEqual(answers.map((a) => a.response), singles.map((s) => s.response));
      assert.equal(answers[0]!.prompt_eval_count, promptLength);
      // Each choice but the one that computed it attaches to the prompt's whole blocks and
      // computes at most its last partial block (16 tokens); with the cache on, even the first
      // finds them cached by the single requests above.
      assert.ok(computed <= promptLength + N * 16, `${computed} prompt tokens computed for ${N} choices of ${promptLength}`);
    });
  }

  test(`${N} requests without a group, prefix cache off, compute the prompt ${N} times`, async () => {
    const e = newEngine({ prefixCache: false, parallel: N });
    const { computed, answers } = await promptTokensComputed(e, () => Promise.all(Array.from({ length: N }, (_, i) => generate(e, SEED + i))));
    const promptLength = answers[0]!.prompt_eval_count!;
    assert.ok(computed >= N * promptLength, `${computed} prompt tokens computed for ${N} requests of ${promptLength}`);
  });

  test("fewer places than choices (prefix cache off): the later choices attach to the blocks the first ones leave", async () => {
    const e = newEngine({ prefixCache: false, parallel: N / 2 });
    const group = {};
    const { computed, answers } = await promptTokensComputed(e, () => Promise.all(Array.from({ length: N }, (_, i) => generate(e, SEED + i, group))));
    const promptLength = answers[0]!.prompt_eval_count!;
    assert.ok(computed <= promptLength + N * 16, `${computed} prompt tokens computed for ${N} choices of ${promptLength}`);
    const alone = newEngine({ prefixCache: false, parallel: 1 });
    for (let i = 0; i < N; i++) assert.equal(answers[i]!.response, (await generate(alone, SEED + i)).response, `choice ${i}`);
    // No block of the request's own tree outlives it (the next step drops them): the prefix cache is off.
    await generate(e, SEED);
    assert.equal(e.stats()[0]!.kv.cachedBlocks, 0);
  });
});
