#!/usr/bin/env node
// Builds native/ into build/Release/vllama.node with cmake-js.
//
// Default ("prebuilt"): compile only the addon against the headers of the llama.cpp release that
// node-llama-cpp ships, and link the prebuilt shared libraries of exactly that release from
// @node-llama-cpp/linux-x64. Takes seconds.
//
// VLLAMA_BUILD=source: compile llama.cpp itself from the same release (the git bundle inside
// node-llama-cpp), with native CPU features, and with CUDA when VLLAMA_CUDA=1, or by default
// when nvcc and an NVIDIA GPU are both present.
// VLLAMA_CUDA_ARCHS picks the CUDA architectures (default "native"; "90a" for H100/H200).
// VLLAMA_BUILD_DIR builds elsewhere than build/ (VLLAMA_ADDON_DIR=<dir>/Release then loads it).
// VLLAMA_BUILD_PEERS=1 (source builds): also build llama-batched-bench and llama-server from the
// same compiled libraries into <dir>/bin, the benchmark's peers (VLLAMA_BENCH_LLAMA_BUILD=<dir>).
// Both builds carry ggml's RPC backend and rpc-server (<dir>/Release/ggml-rpc-server) with
// native/rpc-patches, and the CPU backend patches of native/patches (VLLAMA_PATCHED_CPU=0 skips
// them); never fatal. Prebuilt builds compile them beside the prebuilt libraries
// (scripts/rpc-backend.mjs, scripts/patched-cpu.mjs), source builds compile llama.cpp from the
// patched tree (scripts/source-build.mjs).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { installPatchedCpuBackend } from "./patched-cpu.mjs";
import { installRpcBackend } from "./rpc-backend.mjs";
import { sourceForSourceBuild } from "./source-build.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// Resolved by folder, not by require(): these packages' "exports" hide their package.json.
const packageDir = (name) => path.join(root, "node_modules", name);
const llamaDir = path.join(packageDir("node-llama-cpp"), "llama");
const { tag } = JSON.parse(readFileSync(path.join(llamaDir, "llama.cpp.info.json"), "utf8"));
const sourceDir = path.join(root, "deps", `llama.cpp-${tag}`);

function run(cmd, args) {
  execFileSync(cmd, args, { stdio: "inherit", cwd: root });
}

function hasCommand(cmd) {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

if (!existsSync(path.join(sourceDir, "include", "llama.h"))) {
  run("git", ["-c", "advice.detachedHead=false", "clone", "--quiet",
    path.join(llamaDir, "gitRelease.bundle"), sourceDir]);
}

const mode = process.env.VLLAMA_BUILD ?? "prebuilt";
if (mode !== "prebuilt" && mode !== "source") {
  console.error(`VLLAMA_BUILD must be "prebuilt" or "source", got "${mode}"`);
  process.exit(2);
}
// CUDA by default only where it can run: nvcc to build and an NVIDIA GPU to pick the arch for.
const gpuPresent = () => existsSync("/dev/nvidia0") || existsSync("/dev/dxg");
const cuda = mode === "source" && (process.env.VLLAMA_CUDA ? process.env.VLLAMA_CUDA === "1" : hasCommand("nvcc") && gpuPresent());
if (cuda && !process.env.VLLAMA_CUDA_ARCHS && !gpuPresent()) {
  console.error('VLLAMA_CUDA=1 without a GPU here: set VLLAMA_CUDA_ARCHS (e.g. "90a" for H100/H200)');
  process.exit(2);
}

const peers = process.env.VLLAMA_BUILD_PEERS === "1";
if (peers && mode !== "source") {
  console.error("VLLAMA_BUILD_PEERS=1 needs VLLAMA_BUILD=source (the peers are built from the same compiled llama.cpp)");
  process.exit(2);
}

const outDir = path.resolve(root, process.env.VLLAMA_BUILD_DIR ?? "build");
// Prebuilt builds compile the addon against the release's headers (the patches touch none).
const compiled = mode === "source" ? sourceForSourceBuild(sourceDir, outDir) : { dir: sourceDir, rpc: false };
const defines = [`--CDVLLAMA_LLAMA_SOURCE_DIR=${compiled.dir}`, `--CDVLLAMA_BUILD=${mode}`, `--CDVLLAMA_BUILD_PEERS=${peers ? "ON" : "OFF"}`];
if (mode === "prebuilt") {
  const prebuiltDir = path.join(packageDir("@node-llama-cpp/linux-x64"), "bins", "linux-x64");
  defines.push(`--CDVLLAMA_PREBUILT_DIR=${prebuiltDir}`, `--CDVLLAMA_PREBUILT_TAG=${tag}`);
} else {
  defines.push(`--CDGGML_CUDA=${cuda ? "ON" : "OFF"}`, `--CDGGML_RPC=${compiled.rpc ? "ON" : "OFF"}`);
  if (cuda) defines.push(`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.VLLAMA_CUDA_ARCHS ?? "native"}`);
}

const cmakeJs = path.join(packageDir("cmake-js"), "bin", "cmake-js");
const jobs = String(Math.max(2, (await import("node:os")).availableParallelism()));
// Configure every time (cheap), then build: `compile` would reuse an old configuration and
// silently ignore changed settings (another VLLAMA_BUILD_PEERS, CUDA on or off).
const cmakeJsArgs = ["--log-level", "warn", "--directory", root, "--out", outDir, "--parallel", jobs, ...defines];
run(process.execPath, [cmakeJs, "configure", ...cmakeJsArgs]);
run(process.execPath, [cmakeJs, "build", ...cmakeJsArgs]);
if (mode === "prebuilt") installPatchedCpuBackend({ sourceDir, outDir, jobs });
if (mode === "prebuilt") await installRpcBackend({ sourceDir, outDir, tag });
if (peers) run("cmake", ["--build", outDir, "--config", "Release", "--parallel", jobs, "--target", "llama-batched-bench", "llama-server"]);
console.log(`vllama: native addon built (${mode}${cuda ? ", CUDA" : ""}, llama.cpp ${tag})`);
