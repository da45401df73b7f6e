#!/usr/bin/env bash
# Builds the two llama.cpp peers (llama-batched-bench, llama-server) from the SAME llama.cpp
# source the project binds (deps/llama.cpp-v0.5.0), CPU only, so the comparison is kernel-for-kernel.
# Usage: bench/build-peers.sh [build-dir]   (default .bench/llama-build; JOBS=2 by default)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/deps/llama.cpp-v0.5.0"
build="${1:-$root/.bench/llama-build}"
jobs="${JOBS:-2}"

if [[ ! -f "$src/CMakeLists.txt" ]]; then
  echo "llama.cpp source not found at $src" >&2
  exit 1
fi

# GCC 12 compiles llama.cpp's AMX tile config away (native/patches/ggml-cpu-amx-tile-config.patch):
# built with -march=native on a CPU with AMX, the peers died of SIGILL at their first Q8_0 product.
# So they build from a copy of the source with that one patch, which changes no kernel.
peer_src="$root/.bench/llama-src"
if [[ ! -d "$peer_src/.git" ]]; then
  git -c advice.detachedHead=false clone --quiet --shared "$src" "$peer_src"
fi
git -C "$peer_src" checkout --quiet -- .
git -C "$peer_src" apply "$root/native/patches/ggml-cpu-amx-tile-config.patch"

cmake -S "$peer_src" -B "$build" \
  -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON \
  -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_OPENSSL=OFF \
  -DLLAMA_CURL=OFF
# nice: the machine is shared; the build must not starve other people's work.
nice -n 10 cmake --build "$build" --config Release --target llama-batched-bench llama-server -j"$jobs"

echo "built: $(ls "$build"/bin/llama-batched-bench "$build"/bin/llama-server)"
