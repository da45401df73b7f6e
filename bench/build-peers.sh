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

cmake -S "$src" -B "$build" \
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
