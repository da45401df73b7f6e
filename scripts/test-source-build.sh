#!/usr/bin/env bash
# Builds llama.cpp from the node-llama-cpp bundle (VLLAMA_BUILD=source: native CPU features, CUDA
# when nvcc is found) into build-source/, and runs the native and engine tests against it.
# Slow on 2 cores (the whole of llama.cpp compiles); CI runs the prebuilt build instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VLLAMA_BUILD=source VLLAMA_BUILD_DIR=build-source node scripts/build-native.mjs
VLLAMA_ADDON_DIR=build-source/Release node --import tsx --test test/native.test.ts test/engine.test.ts
