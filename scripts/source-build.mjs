// The llama.cpp tree a source build (VLLAMA_BUILD=source) compiles: a copy of the release with the
// project's patches, native/rpc-patches (ggml's RPC backend, compiled in with GGML_RPC, with
// rpc-server) and native/patches (the CPU backend; VLLAMA_PATCHED_CPU=0 leaves them out).
// Never fatal: when a patch does not apply (another release), both warnings are given and the
// release itself is compiled, without the RPC backend.
import path from "node:path";
import { patchDir, patchedCpuEnabled, patchedSource, warnUnpatchedCpu } from "./patched-cpu.mjs";
import { rpcPatchDir, warnNoRpc } from "./rpc-backend.mjs";

/** { dir, rpc }: the tree to compile, and whether it carries the RPC patch (GGML_RPC on). */
export function sourceForSourceBuild(sourceDir, outDir) {
  try {
    const patchDirs = patchedCpuEnabled ? [rpcPatchDir, patchDir] : [rpcPatchDir];
    return { dir: patchedSource(sourceDir, path.join(outDir, "llama.cpp-patched"), patchDirs), rpc: true };
  } catch (error) {
    warnNoRpc("patching llama.cpp's source", error);
    if (patchedCpuEnabled) warnUnpatchedCpu("patching llama.cpp's source", error);
    return { dir: sourceDir, rpc: false };
  }
}
