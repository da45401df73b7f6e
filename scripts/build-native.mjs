#!/usr/bin/env node
// Builds native/ into build/Release/vllama.node with cmake-js.
//
// Default ("prebuilt"): compile only the addon against the headers of the llama.cpp release that
// node-llama-cpp ships, and link the prebuilt shared libraries of exactly that release from
// @node-llama-cpp/linux-x64. Takes seconds.
//
// VLLAMA_BUILD=source: compile llama.cpp itself from the same release (the git bundle inside
// node-llama-cpp), with native CPU features, and with CUDA when VLLAMA_CUDA=1 or nvcc is found.
// VLLAMA_CUDA_ARCHS picks the CUDA architectures (default "native"; "90a" for H100/H200).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(path.join(root, "package.json"));
const llamaDir = path.join(path.dirname(require.resolve("node-llama-cpp/package.json")), "llama");
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
const cuda = mode === "source" && (process.env.VLLAMA_CUDA ? process.env.VLLAMA_CUDA === "1" : hasCommand("nvcc"));

const defines = [`--CDVLLAMA_LLAMA_SOURCE_DIR=${sourceDir}`, `--CDVLLAMA_BUILD=${mode}`];
if (mode === "prebuilt") {
  const prebuiltDir = path.join(path.dirname(require.resolve("@node-llama-cpp/linux-x64/package.json")), "bins", "linux-x64");
  defines.push(`--CDVLLAMA_PREBUILT_DIR=${prebuiltDir}`, `--CDVLLAMA_PREBUILT_TAG=${tag}`);
} else {
  defines.push(`--CDGGML_CUDA=${cuda ? "ON" : "OFF"}`);
  if (cuda) defines.push(`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.VLLAMA_CUDA_ARCHS ?? "native"}`);
}

// Node-API needs only node_api.h; use the headers of the running Node instead of downloading them.
const nodeDir = process.env.npm_config_nodedir ?? path.resolve(path.dirname(process.execPath), "..");
const cmakeJs = path.join(path.dirname(require.resolve("cmake-js/package.json")), "bin", "cmake-js");
run(process.execPath, [cmakeJs, "compile", "--log-level", "warn", "--directory", root,
  "--runtime-directory", nodeDir, "--parallel", String(Math.max(2, (await import("node:os")).availableParallelism())), ...defines]);
console.log(`vllama: native addon built (${mode}${cuda ? ", CUDA" : ""}, llama.cpp ${tag})`);
