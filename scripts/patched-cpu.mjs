// The project's patches to llama.cpp's CPU backend (native/patches/*.patch, issue 18): masked
// cells of the unified KV cache skipped in ggml's CPU flash attention (docs/perf-log/
// 2026-12-01-cpu-attention-patch.md), and Q8_0 weights repacked for a VNNI matrix product (AVX512-VNNI or AVX-VNNI)
// (docs/perf-log/2026-12-02-cpu-q8_0-vnni-product.md), and AMX tiles configured as llama.cpp means them
// when GCC 12 compiles its AMX kernels (a SIGILL on Sapphire Rapids before). The prebuilt libraries stay for everything else.
//
// Prebuilt builds: ggml loads its CPU backend at run time, the best-scoring libggml-cpu-<variant>.so
// beside the addon. Only that variant is compiled from the patched release source (same release,
// linked against the prebuilt libggml-base.so it is loaded with) and copied over the prebuilt file.
// Source builds: llama.cpp is compiled from a patched copy of the release source (scripts/source-build.mjs).
// Never fatal: a patch or build failure warns and keeps the unpatched backend.
// VLLAMA_PATCHED_CPU=0 skips the patch in both builds.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const patchedCpuEnabled = process.env.VLLAMA_PATCHED_CPU !== "0";
export const patchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "native", "patches");
/** Written beside the addon when the patched backend is installed: which variant, with which patches (the tests read the loaded file itself). */
export const patchedCpuManifest = "patched-cpu.json";

const patchFiles = (dir = patchDir) => readdirSync(dir).filter((f) => f.endsWith(".patch")).sort();

function run(cmd, args, cwd) {
  execFileSync(cmd, args, { stdio: "inherit", cwd });
}

export function warnUnpatchedCpu(what, error) {
  console.warn(`vllama: WARNING: ${what} failed (${error.message.split("\n")[0]}); ` +
    "keeping llama.cpp's unpatched CPU backend: long prompts among many sequences run slower (issue 18). " +
    "VLLAMA_PATCHED_CPU=0 skips this step.");
}

/** A copy of the release source (git clone --shared: cheap) with every patch of each folder of `patchDirs` applied; deps/ stays untouched. */
export function patchedSource(sourceDir, dest, patchDirs = [patchDir]) {
  if (!existsSync(path.join(dest, ".git"))) {
    rmSync(dest, { recursive: true, force: true });
    run("git", ["-c", "advice.detachedHead=false", "clone", "--quiet", "--shared", sourceDir, dest]);
  }
  run("git", ["checkout", "--quiet", "--", "."], dest);
  for (const dir of patchDirs) for (const p of patchFiles(dir)) run("git", ["apply", path.join(dir, p)], dest);
  return dest;
}

/** The CPU variant ggml picks on this machine, asked of the freshly built addon in a child process. */
function chosenCpuVariant(releaseDir) {
  const script = `const a = require(${JSON.stringify(path.join(releaseDir, "vllama.node"))});` +
    `process.stdout.write(a.init("cpu", ${JSON.stringify(releaseDir)}).cpuBackendFile);`;
  const file = execFileSync(process.execPath, ["-e", script], { encoding: "utf8" });
  const variant = /libggml-cpu-(.+)\.so$/.exec(path.basename(file))?.[1];
  if (!variant) throw new Error(`no CPU backend file reported (got "${file}")`);
  return variant;
}

/** Prebuilt builds: compiles the patched CPU variant this machine loads and installs it over the prebuilt one. */
export function installPatchedCpuBackend({ sourceDir, outDir, jobs }) {
  const releaseDir = path.join(outDir, "Release");
  rmSync(path.join(releaseDir, patchedCpuManifest), { force: true });
  if (!patchedCpuEnabled) {
    console.log("vllama: VLLAMA_PATCHED_CPU=0: prebuilt CPU backend kept (unpatched)");
    return;
  }
  try {
    const variant = chosenCpuVariant(releaseDir);
    const tree = path.join(outDir, "patched-cpu");
    const src = patchedSource(sourceDir, path.join(tree, "src"));
    const cmakeDir = path.join(tree, "cmake");
    const generator = existsSync("/usr/bin/ninja") ? ["-G", "Ninja"] : [];
    // The prebuilt release's own settings (GGML_BACKEND_DL, all CPU variants, no OpenMP: its
    // libraries need no libgomp), so the variant fits the prebuilt libggml-base.so it loads with.
    run("cmake", ["-S", src, "-B", cmakeDir, ...generator, "-DCMAKE_BUILD_TYPE=Release",
      "-DBUILD_SHARED_LIBS=ON", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON", "-DGGML_NATIVE=OFF",
      "-DGGML_OPENMP=OFF", "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON", "-DCMAKE_INSTALL_RPATH=$ORIGIN", "-DLLAMA_BUILD_COMMON=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
      "-DLLAMA_BUILD_TOOLS=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "--log-level=WARNING"]);
    const target = `ggml-cpu-${variant}`;
    const started = Date.now();
    run("cmake", ["--build", cmakeDir, "--parallel", jobs, "--target", target]);
    const built = path.join(cmakeDir, "bin", `lib${target}.so`);
    const installed = path.join(releaseDir, `lib${target}.so`);
    // The variant needs libggml-base.so.0 (the source build's SONAME) where the prebuilt library is
    // libggml-base.so: a link beside it makes the loader find the prebuilt one by $ORIGIN, which
    // it then shares with the addon (same file). A second, source-built ggml-base aborts at load.
    rmSync(path.join(releaseDir, "libggml-base.so.0"), { force: true });
    symlinkSync("libggml-base.so", path.join(releaseDir, "libggml-base.so.0"));
    // Copy then rename: a failed copy leaves the prebuilt file whole.
    copyFileSync(built, `${installed}.tmp`);
    renameSync(`${installed}.tmp`, installed);
    writeFileSync(path.join(releaseDir, patchedCpuManifest), JSON.stringify({ file: installed, variant, patches: patchFiles() }, null, 2));
    console.log(`vllama: patched CPU backend ${path.basename(installed)} installed (built in ${((Date.now() - started) / 1000).toFixed(0)} s)`);
  } catch (error) {
    warnUnpatchedCpu("building the patched CPU backend", error);
  }
}
