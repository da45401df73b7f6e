// The only place that loads the compiled addon.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { NativeAddon } from "./types.js";

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
/** Folder of vllama.node and the llama.cpp libraries it loads backends from. */
export const addonDir = process.env.VLLAMA_ADDON_DIR ? path.resolve(process.env.VLLAMA_ADDON_DIR) : path.join(packageRoot, "build", "Release");

let addon: NativeAddon | undefined;

export function loadAddon(): NativeAddon {
  if (addon) return addon;
  const file = path.join(addonDir, "vllama.node");
  if (!existsSync(file)) {
    throw new Error(`vllama's native addon is not built (${file} is missing): run \`npm run build:native\``);
  }
  addon = createRequire(import.meta.url)(file) as NativeAddon;
  return addon;
}
