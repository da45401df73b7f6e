// Greedy tokens of the patched CPU backend (native/patches) against the prebuilt one, on the same
// model and the same concurrent long prompts. The attention patch only skips cells the mask hides,
// so on an F16 or F32 model every sequence must generate the same tokens. The Q8_0 product sums
// the same integers exactly but scales them in another float order, so on a Q8_0 model sequences
// agree up to near ties (llama110m Q8_0, random weights, 8 x 1,500: 7 of 8 the same 32 tokens,
// the 8th from its 4th, 2026-12-02). Run it twice, once per backend, and compare:
//   node --import tsx scripts/patched-cpu-parity.ts --out /tmp/patched.json
//   VLLAMA_ADDON_DIR=/tmp/unpatched node --import tsx scripts/patched-cpu-parity.ts --out /tmp/prebuilt.json
// where /tmp/unpatched is build/Release with the prebuilt libggml-cpu-*.so copied over the patched
// one (@node-llama-cpp/linux-x64/bins/linux-x64). Defaults: .bench/llama110m-q8_0.gguf, 8 x 1,500.
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Engine } from "../src/engine/engine.js";
import { initBackend } from "../src/native/index.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: ".bench/llama110m-q8_0.gguf" },
    parallel: { type: "string", default: "8" },
    words: { type: "string", default: "1500" },
    out: { type: "string" },
  },
});
const parallel = Number(values.parallel);
const WORDS = ["river", "stone", "lantern", "meadow", "copper", "whisper", "harbor", "thistle", "amber", "falcon", "orchard", "velvet"];
const prompts = Array.from({ length: parallel }, (_, i) =>
  Array.from({ length: Number(values.words) }, (_, j) => WORDS[(i * 5 + j * 7 + (j >> 3)) % WORDS.length]).join(" "));

const { cpuBackendFile } = initBackend("cpu");
const engine = new Engine({ modelsDir: path.join(os.tmpdir(), "vllama-parity-store"), gpu: "cpu", parallel, contextLength: 2048, kvCells: parallel * 2048 });
const started = performance.now();
const answers = await Promise.all(prompts.map(async (prompt) => {
  const r = await engine.generate({ model: path.resolve(values.model!), prompt, raw: true, stream: false, options: { temperature: 0, num_predict: 32, ignore_eos: true } });
  return { promptTokens: r.prompt_eval_count, response: r.response };
}));
await engine.close();
const result = { cpuBackendFile, seconds: (performance.now() - started) / 1000, answers };
if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 1));
console.log(JSON.stringify({ cpuBackendFile, seconds: result.seconds.toFixed(1), promptTokens: answers.map((a) => a.promptTokens) }));
