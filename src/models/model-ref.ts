// The model a request names, as the engine loads it: a GGUF path is used as is; anything else is
// a name in the model store, which brings its Modelfile settings along.
import { existsSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { BadRequestError } from "../api/errors.js";
import type { ChatMessage, Options } from "../api/ollama.js";
import type { ModelStore } from "./store.js";

/** A model as a request names it: a store name or a GGUF path, with its Modelfile settings. */
export interface ModelRef {
  name: string;
  path: string;
  /** The model's projector (vision), when its store entry has one. */
  projectorPath?: string;
  digest: string;
  size: number;
  template?: string;
  system?: string;
  parameters: Partial<Options>;
  messages: ChatMessage[];
}

/** The absolute file a path model names (`~/` is the home directory). */
export function modelPathOf(name: string): string {
  return path.resolve(name.replace(/^~(?=\/)/, os.homedir()));
}

export async function resolveModelRef(store: ModelStore, name: string): Promise<ModelRef> {
  if (looksLikeModelPath(name)) {
    const file = modelPathOf(name);
    if (!existsSync(file)) throw new BadRequestError(`model file '${name}' not found`);
    return { name, path: file, digest: "", size: statSync(file).size, parameters: {}, messages: [] };
  }
  const m = await store.resolve(name, "if-changed");
  return {
    name: m.name, path: m.modelPath, projectorPath: m.projectorPath, digest: m.digest.replace(/^sha256:/, ""), size: m.size,
    template: m.template, system: m.system, parameters: m.parameters as Partial<Options>, messages: m.messages,
  };
}

/** Whether a request's model names a GGUF file rather than a store name. */
export function looksLikeModelPath(name: string): boolean {
  return name.endsWith(".gguf") || name.startsWith("/") || name.startsWith("./") || name.startsWith("../") || name.startsWith("~/");
}
