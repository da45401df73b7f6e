// What a grammar-constrained sequence costs the other sequences of its model (issue 13, finding 2;
// figures in docs/RELIABILITY.md): the inter-token time of an unconstrained greedy request alone,
// then while requests with a 256-value enum `format` are sent one after another beside it. The
// demo model (Qwen2's 151,936-token vocabulary, random weights) is the worst case: its choice is
// almost never one the grammar allows, so the sampler searches the vocabulary at most tokens.
//
//   node --import tsx scripts/grammar-cost.ts [threads]
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Engine } from "../src/engine/engine.js";
import { ensureBuiltinModel } from "../src/models/builtin.js";

const threads = Number(process.argv[2] ?? 1);
const engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-grammar-cost-")), parallel: 4, threads });
const demo = await ensureBuiltinModel(engine.store);
if (!demo) throw new Error("the demo model was not created");
const model: string = demo;
const enumFormat = { type: "string", enum: Array.from({ length: 256 }, (_, i) => `value number ${i}`) };

/** Milliseconds per generated token of one unconstrained greedy request of 32 tokens. */
async function interTokenMs(): Promise<number> {
  const reply = await engine.generate({ model, prompt: "Once upon a time", options: { num_predict: 32, temperature: 0 } });
  return reply.eval_duration! / 1e6 / reply.eval_count!;
}

await interTokenMs(); // loads the model
const alone = await interTokenMs();
let constrained = true;
let constrainedTokens = 0;
const beside = (async () => {
  while (constrained) {
    const reply = await engine.generate({ model, prompt: "Pick one", format: enumFormat, options: { num_predict: 16, temperature: 0 } });
    constrainedTokens += reply.eval_count ?? 0;
  }
})();
const during = await interTokenMs();
constrained = false;
await beside;
console.log(JSON.stringify({ threads, alone_ms_per_token: +alone.toFixed(1), beside_256_enum_ms_per_token: +during.toFixed(1), constrained_tokens: constrainedTokens }));
await engine.close();
