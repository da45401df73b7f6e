#!/usr/bin/env bash
# Builds llama.cpp from the node-llama-cpp bundle (VLLAMA_BUILD=source: native CPU features, CUDA
# when nvcc is found, the RPC backend and rpc-server) into build-source/, and runs the native,
# engine and RPC tests against it.
# Slow on 2 cores (the whole of llama.cpp compiles); CI runs the prebuilt build instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VLLAMA_BUILD=source VLLAMA_BUILD_DIR=build-source node scripts/build-native.mjs
VLLAMA_ADDON_DIR=build-source/Release node --import tsx --test \
  test/native/native.test.ts test/engine/engine.test.ts test/engine/rpc.test.ts test/cli/worker.test.ts
