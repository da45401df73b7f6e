// ggml RPC workers as model devices (`vllama serve --rpc`): the thin part over ggml's RPC backend,
// libggml-rpc.so, built beside the addon with native/rpc-patches (scripts/rpc-backend.mjs).
#pragma once

#include "ggml-backend.h"

#include <cstdint>
#include <string>
#include <vector>

// Connects to each worker (bounded by timeout_ms, also for every later exchange) and returns
// their devices in order; throws a CodedError naming the first worker that does not answer.
std::vector<ggml_backend_dev_t> ConnectRpcWorkers(const std::vector<std::string> & endpoints, uint32_t timeout_ms);

// After a computation: throws a CodedError naming the first worker whose connection failed
// (lost, or no answer in time), whose share of the computation is then missing.
void CheckRpcWorkers(const std::vector<std::string> & endpoints);
