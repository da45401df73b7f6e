#!/usr/bin/env bash
# The GPU check, on a machine with an NVIDIA GPU and nvcc (CI has none):
#   build  llama.cpp with CUDA from node-llama-cpp's bundle, the addon against it, and the
#          benchmark peers (llama-batched-bench, llama-server) from the same compiled libraries;
#   test   the native and engine tests on the GPU (the addon picks CUDA by itself);
#   model  a random-weight Llama-3.1-8B-shaped Q8_0 model (.bench/llama8b-q8_0.gguf);
#   bench  the native, engine, http and prefix suites on the GPU against those peers (each
#          suite is also a step of its own: native, engine, http, prefix).
# Usage: VLLAMA_CUDA_ARCHS=90a scripts/gpu-check.sh [build|test|model|bench|all]...
# VLLAMA_CUDA_ARCHS defaults to the GPU's own arch ("native"); one arch builds much faster than all.
set -euo pipefail
cd "$(dirname "$0")/.."

build="${VLLAMA_BUILD_DIR:-build-cuda}"
model=".bench/llama8b-q8_0.gguf"
export VLLAMA_ADDON_DIR="$build/Release" VLLAMA_BENCH_LLAMA_BUILD="$build"

step_build() {
  VLLAMA_BUILD=source VLLAMA_CUDA=1 VLLAMA_BUILD_PEERS=1 VLLAMA_BUILD_DIR="$build" node scripts/build-native.mjs
}

step_test() {
  node --import tsx --test --test-reporter=spec test/native.test.ts test/engine.test.ts
}

step_model() {
  mkdir -p "$(dirname "$model")"
  [[ -f "$model" ]] || node --import tsx scripts/make-model.ts --preset llama8b --type q8_0 --out "$model"
}

# One benchmark suite on the GPU, against the peers built beside the addon.
suite() {
  step_model
  local extra=()
  [[ "$1" == engine || "$1" == http ]] && extra=(--parallel 1,8,32,64)
  node --import tsx bench/run.ts "$1" --gpu cuda --model "$model" "${extra[@]}"
}

steps=("$@")
[[ ${#steps[@]} -gt 0 && "${steps[0]}" != all ]] || steps=(build test bench)
for step in "${steps[@]}"; do
  case "$step" in
    build | test | model) "step_$step" ;;
    native | engine | http | prefix) suite "$step" ;;
    bench) for s in native engine http prefix; do suite "$s"; done ;;
    *) echo "unknown step '$step' (build, test, model, native, engine, http, prefix, bench, all)" >&2; exit 2 ;;
  esac
done
