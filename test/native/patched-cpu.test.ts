// The CPU backend that loads is the one the install patched (native/patches, scripts/patched-cpu.mjs):
// a failed patch build only warns at install, so without this test CI could run unpatched unseen.
// And the patched Q8_0 product (ggml-cpu-q8_0-vnni.patch) and flash attention
// (ggml-cpu-flash-attn-skip-masked.patch) compute what llama.cpp's do.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { Engine } from "../../src/engine/engine.js";
import { addonDir } from "../../src/native/binding.js";
import { initBackend, loadModel } from "../../src/native/index.js";
import { assertSameGreedy, NEAR_TIE_Q8_0 } from "../helpers/greedy.js";
import { OTHER_PROMPTS, REFERENCE_PROMPT, REFERENCE_TEXT, storiesQ8Path } from "../helpers/models.js";

const patchedExpected = process.env.VLLAMA_PATCHED_CPU !== "0";
const patchDir = path.join(import.meta.dirname, "..", "..", "native", "patches");
/** Each patch compiles "vllama-patch:<its file name less ggml-cpu- and .patch>" into the backend. */
const patchIds = readdirSync(patchDir).filter((f) => f.endsWith(".patch")).map((f) => `vllama-patch:${f.replace(/^ggml-cpu-/, "").replace(/\.patch$/, "")}`);

test(`the loaded CPU backend ${patchedExpected ? "carries" : "lacks (VLLAMA_PATCHED_CPU=0)"} every patch of native/patches`, () => {
  assert.deepEqual(patchIds.sort(), ["vllama-patch:amx-tile-config", "vllama-patch:flash-attn-skip-masked", "vllama-patch:q8_0-vnni"]);
  const { cpuBackendFile } = initBackend("cpu");
  // Prebuilt builds load a libggml-cpu-<variant>.so beside the addon; source builds link libggml-cpu.so from ../bin.
  const file = cpuBackendFile || path.join(addonDir, "..", "bin", "libggml-cpu.so");
  if (cpuBackendFile) assert.equal(path.dirname(cpuBackendFile), addonDir);
  const bytes = readFileSync(file);
  for (const id of patchIds) {
    assert.equal(bytes.includes(id), patchedExpected, `${file}: ${id} ${patchedExpected ? "missing: rebuild with `npm run build:native` (its warning says why the patched build failed)" : "present"}`);
  }
});

// The patched attention's paths (a long cache's single row, small steps' rows by position with a
// bitmap of live blocks, Q tiles computing live rows only) against ggml's reference path in the
// same backend: test/native/flash-attn-check.cpp, built here against the release's headers and
// libraries. The model tests above and below reach these paths with a few shapes; this one with
// random caches shared by up to 32 sequences.
test("the loaded backend's flash attention equals ggml's reference path on caches shared by many sequences", { timeout: 120_000 }, () => {
  const { cpuBackendFile } = initBackend("cpu");
  const libDir = cpuBackendFile ? addonDir : path.join(addonDir, "..", "bin");
  const libs = readdirSync(libDir).filter((f) => /^libggml(-base)?(\.v[\d.]+)?\.so$/.test(f)).map((f) => path.join(libDir, f));
  const include = path.join(import.meta.dirname, "..", "..", "deps", "llama.cpp-v0.5.0", "ggml", "include");
  const exe = path.join(mkdtempSync(path.join(os.tmpdir(), "vllama-fa-check-")), "flash-attn-check");
  execFileSync(process.env.CXX ?? "c++", ["-O2", "-std=c++17", "-I", include, path.join(import.meta.dirname, "flash-attn-check.cpp"), "-o", exe, ...libs, `-Wl,-rpath,${libDir}`]);
  const out = execFileSync(exe, cpuBackendFile ? [cpuBackendFile] : [], { encoding: "utf8", env: { ...process.env, LD_LIBRARY_PATH: libDir } });
  assert.match(out, /^336 cases, 0 failed$/m, out);
});

// The Q8_0 product is compiled into the variants with AVX512-VNNI or AVX-VNNI, which ggml loads
// where the CPU has them. Where the CPU has AMX-INT8, llama.cpp's AMX buffer comes first and takes
// the same weights (its tile kernels; ggml-cpu-amx-tile-config.patch makes them run when GCC 12
// builds them).
const cpuFlags = existsSync("/proc/cpuinfo") ? readFileSync("/proc/cpuinfo", "utf8") : "";
const cpuHasAmx = /\bamx_int8\b/.test(cpuFlags);
const cpuHasVnni = /\b(avx512_vnni|avx_vnni)\b/.test(cpuFlags);
const q8Buffer = cpuHasAmx ? "AMX" : patchedExpected && cpuHasVnni ? "CPU_REPACK" : undefined;

test(`a Q8_0 model's weights ${q8Buffer ? `go to the ${q8Buffer} buffer` : "stay as stored"} on this CPU`, async () => {
  const model = await loadModel(storiesQ8Path);
  try {
    // stories260K Q8_0: attention (64 and 32 rows) and output (512 rows) weights, 0.10 MiB; the
    // 172-row feed-forward ones are no multiple of 16 (nor of AMX's 32) and stay as stored.
    const mib = model.info.weightBuffersMiB;
    for (const buffer of ["AMX", "CPU_REPACK"]) assert.equal((mib[buffer] ?? 0) > 0, buffer === q8Buffer, JSON.stringify(mib));
    assert.ok(mib.CPU! > 0, "the rest stays in the CPU buffer");
  } finally {
    await model.dispose();
  }
});

const engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-patched-cpu-store-")), parallel: 16 });
after(() => engine.close());
const greedy = (prompt: string, top_logprobs?: number) =>
  engine.generate({ model: storiesQ8Path, prompt, stream: false, logprobs: top_logprobs !== undefined, top_logprobs, options: { temperature: 0, num_predict: 48 } });

// stories260K in Q8_0: its attention and output weights (64 or 32 rows of 16) take the patched
// product where the CPU has AVX512-VNNI (AMX's where it has AMX-INT8: a SIGILL before the tile
// config patch); its 172-row feed-forward weights take llama.cpp's.
test("a Q8_0 model reproduces llama.cpp's greedy reference alone and beside 12 other sequences", async () => {
  const alone = await greedy(REFERENCE_PROMPT, 5);
  assert.equal(alone.response, REFERENCE_TEXT);
  // Together the prompts share steps, so each product sees 13 rows (tiles of 8 and 5), then fewer as they end.
  const together = await Promise.all([REFERENCE_PROMPT, ...OTHER_PROMPTS.slice(0, 12)].map((p) => greedy(p)));
  assertSameGreedy(together[0]!.response, alone, "the reference prompt among 13", NEAR_TIE_Q8_0);
});
