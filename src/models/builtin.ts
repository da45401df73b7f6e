// The built-in demo model: on a machine with an empty model store, `vllama serve` still has a
// model to serve, so every endpoint works offline from the first minute. It is a tiny qwen2-shaped
// network with RANDOM weights (its answers are gibberish), Qwen2's real tokenizer and Qwen2.5's
// real chat template (with tool support), written by the project's own GGUF writer.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { llamaCppSourceDir, writeSyntheticModel } from "../gguf/synthetic.js";
import type { ModelStore } from "./store.js";

export const BUILTIN_MODEL = "vllama-demo:latest";

/** Creates the demo model when the store has no model at all; returns its name if it did. */
export async function ensureBuiltinModel(store: ModelStore): Promise<string | undefined> {
  if ((await store.list()).length > 0) return undefined;
  const dir = await mkdtemp(path.join(os.tmpdir(), "vllama-demo-"));
  try {
    const template = await readFile(path.join(llamaCppSourceDir(), "models", "templates", "Qwen-Qwen2.5-7B-Instruct.jinja"), "utf8");
    const out = path.join(dir, "vllama-demo.gguf");
    await writeSyntheticModel({ preset: "tiny-qwen2", type: "q8_0", out, chatTemplate: template, seed: 1, name: "vllama-demo (random weights)" });
    await store.create({
      model: BUILTIN_MODEL,
      from: out,
      system: "This is vllama's built-in demo model. Its weights are random: pull a real model with `vllama pull`.",
      parameters: { temperature: 0.7, num_predict: 64 },
    });
    return BUILTIN_MODEL;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
