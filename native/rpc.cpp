#include "rpc.h"

#include "common.h"

#include <string>

static constexpr const char * kWorkerErrorCode = "ERR_RPC_WORKER";

static ggml_backend_reg_t RpcBackend() {
    // Loaded by init() from the addon's folder with the other backends (GGML_BACKEND_DL).
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("RPC");
    if (reg == nullptr) {
        throw CodedError("ggml's RPC backend is not built (libggml-rpc.so is missing beside the addon): run `npm run build:native`",
                         kWorkerErrorCode);
    }
    return reg;
}

template <typename Fn>
static Fn * RpcFunction(const char * name) {
    auto * fn = reinterpret_cast<Fn *>(ggml_backend_reg_get_proc_address(RpcBackend(), name));
    if (fn == nullptr) {
        throw CodedError(std::string("the RPC backend lacks ") + name + " (built without native/rpc-patches): run `npm run build:native`",
                         kWorkerErrorCode);
    }
    return fn;
}

// The patched backend logs "RPC worker <endpoint>: <what> (<cause>)" when a connection fails.
static std::string WorkerFailure(const std::string & endpoint, const std::string & fallback) {
    std::string logged = TakeLastLlamaError();
    if (logged.rfind("RPC worker " + endpoint, 0) == 0) return logged;
    return "RPC worker " + endpoint + ": " + fallback + (logged.empty() ? "" : " (" + logged + ")");
}

std::vector<ggml_backend_dev_t> ConnectRpcWorkers(const std::vector<std::string> & endpoints, uint32_t timeout_ms) {
    std::vector<ggml_backend_dev_t> devices;
    if (endpoints.empty()) return devices;
    RpcFunction<void(uint32_t)>("ggml_backend_rpc_set_timeout_ms")(timeout_ms);
    auto * add_server = RpcFunction<ggml_backend_reg_t(const char *)>("ggml_backend_rpc_add_server");
    for (const std::string & endpoint : endpoints) {
        TakeLastLlamaError();
        ggml_backend_reg_t reg = add_server(endpoint.c_str());
        if (reg == nullptr) throw CodedError(WorkerFailure(endpoint, "offers no device"), kWorkerErrorCode);
        for (size_t i = 0; i < ggml_backend_reg_dev_count(reg); i++) devices.push_back(ggml_backend_reg_dev_get(reg, i));
    }
    return devices;
}

void CheckRpcWorkers(const std::vector<std::string> & endpoints) {
    if (endpoints.empty()) return;
    auto * failed = RpcFunction<bool(const char *)>("ggml_backend_rpc_connection_failed");
    for (const std::string & endpoint : endpoints) {
        if (failed(endpoint.c_str())) throw CodedError(WorkerFailure(endpoint, "connection lost"), kWorkerErrorCode);
    }
}
