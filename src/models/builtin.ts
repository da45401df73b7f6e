// The built-in demo model: on a machine with an empty model store, `vllama serve` still has a
// model to serve, so every endpoint works offline from the first minute. It is a tiny qwen2-shaped
// network with RANDOM weights (its answers are gibberish), Qwen2's real tokenizer and Qwen2.5's
// real chat template (with tool support), written by the project's own GGUF writer.
// It lives in a store of its own under vllama's cache directory, never in the user's store
// (`~/.ollama/models` by default, which Ollama itself would then list), and is served from there.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { llamaCppSourceDir, writeSyntheticModel } from "../gguf/synthetic.js";
import { ModelStore } from "./store.js";

export const BUILTIN_MODEL = "vllama-demo:latest";

/** Where the demo model's own store lives: `$XDG_CACHE_HOME/vllama/builtin-models` (or `~/.cache/...`). */
export function defaultBuiltinStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "vllama", "builtin-models");
}

/**
 * When `store` has no model at all, serves the demo model from its own store in `builtinDir`
 * (written there on first use); returns its name if it did. `store` itself is not written.
 */
export async function ensureBuiltinModel(store: ModelStore, builtinDir = defaultBuiltinStoreDir()): Promise<string | undefined> {
  if ((await store.list()).length > 0) return undefined;
  const builtin = new ModelStore(builtinDir);
  if (!(await builtin.list()).some((m) => m.name === BUILTIN_MODEL)) await writeBuiltinModel(builtin);
  store.serveAlso(builtin);
  return BUILTIN_MODEL;
}

async function writeBuiltinModel(store: ModelStore): Promise<void> {
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
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
