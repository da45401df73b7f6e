// ggml's RPC backend and llama.cpp's rpc-server, for `vllama serve --rpc` and `vllama worker`
// (issue 15). The prebuilt release has neither; both are compiled here from the release's own
// source (deps/llama.cpp-<tag>, with native/rpc-patches applied) against the prebuilt
// libggml-base.so and libggml.<tag>.so beside the addon, so they share one ggml at run time:
// - libggml-rpc.so, loaded by ggml's backend loader from the addon's folder (GGML_BACKEND_DL);
// - ggml-rpc-server (tools/rpc/rpc-server.cpp), which loads the CPU backend from its own folder.
// Three translation units compiled directly: cmake's ggml-rpc target would first rebuild
// ggml-base from source (11 more units) only to throw it away for the prebuilt one.
// Prebuilt builds; source builds compile both with the rest of llama.cpp (GGML_RPC, scripts/source-build.mjs).
// Never fatal: a failure warns and leaves RPC unavailable.
import { execFile } from "node:child_process";
import { renameSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { patchedSource } from "./patched-cpu.mjs";

export const rpcPatchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "native", "rpc-patches");
/** The worker executable's name beside the addon (src/cli/worker.ts starts it by this name). */
export const rpcServerFile = "ggml-rpc-server";
const run = promisify(execFile);

// The flags ggml's CMake gives a backend library built with GGML_BACKEND_DL.
const backendDefines = ["-DGGML_BACKEND_BUILD", "-DGGML_BACKEND_DL", "-DGGML_BACKEND_SHARED", "-DGGML_SHARED",
  "-DGGML_SCHED_MAX_COPIES=4", "-D_GNU_SOURCE", "-D_XOPEN_SOURCE=600"];

/** Compiles into `file.tmp` and renames: a failed build never leaves half a file where the loader looks. */
async function compile(args, file) {
  await run("c++", [...args, "-o", `${file}.tmp`], { maxBuffer: 16 << 20 });
  renameSync(`${file}.tmp`, file);
}

export async function installRpcBackend({ sourceDir, outDir, tag }) {
  const releaseDir = path.join(outDir, "Release");
  const backendFile = path.join(releaseDir, "libggml-rpc.so");
  const serverFile = path.join(releaseDir, rpcServerFile);
  rmSync(backendFile, { force: true });
  rmSync(serverFile, { force: true });
  try {
    const src = patchedSource(sourceDir, path.join(outDir, "rpc-src"), [rpcPatchDir]);
    const common = ["-O3", "-DNDEBUG", "-std=gnu++17", "-fPIC", "-I", path.join(src, "ggml", "include"),
      `-L${releaseDir}`, "-Wl,-rpath,$ORIGIN"];
    const rpcDir = path.join(src, "ggml", "src", "ggml-rpc");
    const started = Date.now();
    // The two outputs compile at once (the backend's ggml-rpc.cpp is the long one).
    await Promise.all([
      compile([...common, ...backendDefines, "-shared", "-I", path.join(src, "ggml", "src"),
        path.join(rpcDir, "ggml-rpc.cpp"), path.join(rpcDir, "transport.cpp"), "-l:libggml-base.so"], backendFile),
      compile([...common, "-DGGML_SHARED", path.join(src, "tools", "rpc", "rpc-server.cpp"),
        `-l:libggml.${tag}.so`, "-l:libggml-base.so"], serverFile),
    ]);
    console.log(`vllama: RPC backend and ${rpcServerFile} built (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  } catch (error) {
    warnNoRpc("building the RPC backend", error);
  }
}

export function warnNoRpc(what, error) {
  console.warn(`vllama: WARNING: ${what} failed (${String(error.message).split("\n")[0]}); ` +
    "`vllama serve --rpc` and `vllama worker` are unavailable.");
}
