// The CPU backend that loads is the one the install patched (native/patches, scripts/patched-cpu.mjs):
// a failed patch build only warns at install, so without this test CI could run unpatched unseen.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { addonDir } from "../../src/native/binding.js";
import { initBackend } from "../../src/native/index.js";

// Compiled into ggml's CPU backend by native/patches/ggml-cpu-flash-attn-skip-masked.patch.
const PATCH_ID = "vllama-patch:flash-attn-skip-masked";
const patchedExpected = process.env.VLLAMA_PATCHED_CPU !== "0";

test(`the loaded CPU backend ${patchedExpected ? "carries" : "lacks (VLLAMA_PATCHED_CPU=0)"} the masked-cell attention patch`, () => {
  const { cpuBackendFile } = initBackend("cpu");
  // Prebuilt builds load a libggml-cpu-<variant>.so beside the addon; source builds link libggml-cpu.so from ../bin.
  const file = cpuBackendFile || path.join(addonDir, "..", "bin", "libggml-cpu.so");
  if (cpuBackendFile) assert.equal(path.dirname(cpuBackendFile), addonDir);
  assert.equal(readFileSync(file).includes(PATCH_ID), patchedExpected, `${file}: patch id ${patchedExpected ? "missing: rebuild with `npm run build:native` (its warning says why the patched build failed)" : "present"}`);
});
