// Module entry: backend selection, model loading, JSON-schema-to-grammar, chat templates, log capture.
#include "chat-library.h"
#include "common.h"
#include "context.h"
#include "model.h"
#include "projector.h"

#include "ggml-backend.h"
#include "json-schema-to-grammar.h"
#include "llama.h"
#include "mtmd-helper.h"
#include "mtmd.h"

#include <pthread.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <vector>

std::atomic<int> g_liveModels{0};
std::atomic<int> g_liveContexts{0};

static std::mutex g_log_mutex;
static std::string g_last_error;
static bool g_log_to_stderr = std::getenv("VLLAMA_LLAMA_LOG") != nullptr;

// The CPU backend file ggml chose at load time (GGML_BACKEND_DL), from its own log line; "" when
// the CPU backend is linked in (source builds). Lets callers check the patched backend loaded.
static std::string g_cpu_backend_file;

static thread_local std::map<std::string, double> * t_weight_buffers = nullptr;

void CaptureWeightBuffers(std::map<std::string, double> * out) { t_weight_buffers = out; }

// "load_tensors:   CPU_REPACK model buffer size =     0.10 MiB": the buffer type and its MiB.
static void NoteWeightBuffer(std::string_view line) {
    static constexpr std::string_view tag = " model buffer size = ";
    const size_t at = line.find(tag);
    const size_t colon = line.find(':');
    if (at == std::string_view::npos || colon == std::string_view::npos || colon > at) return;
    std::string_view name = line.substr(colon + 1, at - colon - 1);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    (*t_weight_buffers)[std::string(name)] += std::strtod(std::string(line.substr(at + tag.size())).c_str(), nullptr);
}

static void OnLlamaLog(enum ggml_log_level level, const char * text, void *) {
    if (g_log_to_stderr) fputs(text, stderr);
    if (t_weight_buffers != nullptr) NoteWeightBuffer(text);
    static const std::string loaded_cpu = "loaded CPU backend from ";
    std::string_view view = text;
    if (size_t at = view.find(loaded_cpu); at != std::string_view::npos) {
        view.remove_prefix(at + loaded_cpu.size());
        while (!view.empty() && (view.back() == '\n' || view.back() == ' ')) view.remove_suffix(1);
        g_cpu_backend_file = view;
    }
    if (level != GGML_LOG_LEVEL_ERROR) return;
    std::string line = text;
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    std::lock_guard<std::mutex> lock(g_log_mutex);
    // The first error of a failure names the cause; later ones only repeat "failed to load".
    if (g_last_error.empty()) g_last_error = line;
}

void InstallLogCapture() {
    llama_log_set(OnLlamaLog, nullptr);
    // The projector library logs (and names its failures) through its own loggers.
    mtmd_log_set(OnLlamaLog, nullptr);
    mtmd_helper_log_set(OnLlamaLog, nullptr);
}

std::string TakeLastLlamaError() {
    std::lock_guard<std::mutex> lock(g_log_mutex);
    std::string out;
    out.swap(g_last_error);
    return out;
}

static std::vector<ggml_backend_dev_t> g_model_devices;
std::vector<ggml_backend_dev_t> & ModelDevices() { return g_model_devices; }
static bool g_initialized = false;
static std::string g_backend = "cpu";

static const char * DeviceType(enum ggml_backend_dev_type t) {
    switch (t) {
        case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
        case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
        case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
        case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
        default: return "other";
    }
}

// init(gpu: "auto" | "cuda" | "cpu", backendDir) -> { backend, devices, systemInfo, cpuBackendFile }
// Backends are loaded once per process; later calls report the same choice.
static Napi::Value Init(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string gpu = StringArg(info, 0, "gpu");
    if (gpu != "auto" && gpu != "cuda" && gpu != "cpu") ThrowCoded(env, "gpu must be auto, cuda or cpu", "ERR_INVALID_ARG");
    if (!g_initialized) {
        InstallLogCapture();
        // Prebuilt libraries load their CPU (and GPU) backends from files beside the addon.
        if (info.Length() > 1 && info[1].IsString()) ggml_backend_load_all_from_path(info[1].As<Napi::String>().Utf8Value().c_str());
        llama_backend_init();
        g_initialized = true;
    }
    std::vector<ggml_backend_dev_t> gpus;
    Napi::Array devices = Napi::Array::New(env);
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        size_t free = 0, total = 0;
        ggml_backend_dev_memory(dev, &free, &total);
        Napi::Object d = Napi::Object::New(env);
        d.Set("name", ggml_backend_dev_name(dev));
        d.Set("description", ggml_backend_dev_description(dev));
        d.Set("type", DeviceType(ggml_backend_dev_type(dev)));
        d.Set("memoryFree", static_cast<double>(free));
        d.Set("memoryTotal", static_cast<double>(total));
        devices.Set(devices.Length(), d);
        std::string reg = ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev));
        if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_GPU && reg == "CUDA") gpus.push_back(dev);
    }
    if (gpu == "cuda" && gpus.empty()) {
        ThrowCoded(env, "gpu \"cuda\" was requested but no CUDA device is usable (build with VLLAMA_BUILD=source on a machine with nvcc)", "ERR_NO_GPU");
    }
    g_model_devices = gpu == "cpu" ? std::vector<ggml_backend_dev_t>{} : gpus;
    g_backend = g_model_devices.empty() ? "cpu" : "cuda";
    Napi::Object r = Napi::Object::New(env);
    r.Set("backend", g_backend);
    r.Set("devices", devices);
    r.Set("systemInfo", llama_print_system_info());
    r.Set("cpuBackendFile", g_cpu_backend_file);
    return r;
}

static Napi::Value LoadModel(const Napi::CallbackInfo & info) {
    if (!g_initialized) ThrowCoded(info.Env(), "call init() before loadModel()", "ERR_INVALID_ARG");
    return Model::Load(info);
}

// The schema converter and the grammar parser recurse once per nesting level and per `$ref` hop
// with no depth limit: a 10,000-long `$ref` chain overflowed the JS thread's 8 MiB stack and the
// process died with SIGSEGV. They run on a thread of their own with this stack; the TypeScript
// side bounds depth and `$ref` chains first (src/engine/json-schema-check.ts), far below it.
static constexpr size_t kSchemaThreadStack = 256u << 20;

// Runs `job` on a new thread with `stack_bytes` of stack and waits for it; rethrows its exception.
static void RunWithStack(size_t stack_bytes, const std::function<void()> & job) {
    struct Call {
        const std::function<void()> * job;
        std::exception_ptr error;
    } call{&job, nullptr};
    auto trampoline = [](void * arg) -> void * {
        auto * c = static_cast<Call *>(arg);
        try {
            (*c->job)();
        } catch (...) {
            c->error = std::current_exception();
        }
        return nullptr;
    };
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, stack_bytes);
    pthread_t thread;
    const int rc = pthread_create(&thread, &attr, trampoline, &call);
    pthread_attr_destroy(&attr);
    if (rc != 0) throw std::runtime_error("cannot start the schema conversion thread");
    pthread_join(thread, nullptr);
    if (call.error) std::rethrow_exception(call.error);
}

// GBNF for a schema by llama.cpp's own converter, then parsed once by llama.cpp's grammar parser
// so that what a sampler would refuse (left recursion) is refused here, as the request's fault.
static std::string ConvertSchema(const std::string & schema_json) {
    std::string grammar;
    try {
        grammar = json_schema_to_grammar(common_json::parse(schema_json));
    } catch (const std::exception & e) {
        throw std::runtime_error(std::string("invalid JSON schema: ") + e.what());
    }
    TakeLastLlamaError();
    llama_sampler * parsed = llama_sampler_init_grammar(nullptr, grammar.c_str(), "root");
    if (parsed == nullptr) {
        const std::string cause = TakeLastLlamaError();
        throw std::runtime_error("unsupported JSON schema: " + (cause.empty() ? std::string("its grammar does not parse") : cause));
    }
    llama_sampler_free(parsed);
    return grammar;
}

// jsonSchemaToGrammar(schemaJson) -> Promise<GBNF>, off the JS thread.
static Napi::Value JsonSchemaToGrammar(const Napi::CallbackInfo & info) {
    std::string text = StringArg(info, 0, "schema");
    auto grammar = std::make_shared<std::string>();
    return PromiseWorker::Run(
        info.Env(),
        [text, grammar] { RunWithStack(kSchemaThreadStack, [&] { *grammar = ConvertSchema(text); }); },
        [grammar](Napi::Env env) { return Napi::String::New(env, *grammar); },
        "ERR_SCHEMA");
}

static Napi::Value LiveObjects(const Napi::CallbackInfo & info) {
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("models", g_liveModels.load());
    r.Set("contexts", g_liveContexts.load());
    r.Set("projectors", g_liveProjectors.load());
    return r;
}

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
    exports.Set("init", Napi::Function::New(env, Init));
    exports.Set("loadModel", Napi::Function::New(env, LoadModel));
    exports.Set("jsonSchemaToGrammar", Napi::Function::New(env, JsonSchemaToGrammar));
    exports.Set("liveObjects", Napi::Function::New(env, LiveObjects));
    exports.Set("Model", Model::Init(env));
    exports.Set("Context", Context::Init(env));
    exports.Set("Projector", Projector::Init(env));
    exports.Set("MediaChunk", MediaChunk::Init(env));
    exports.Set("chatTemplates", Napi::Function::New(env, CreateChatTemplates));
    exports.Set("ChatTemplates", ChatTemplates::Init(env));
    exports.Set("ChatParser", ChatParser::Init(env));
    return exports;
}

NODE_API_MODULE(vllama, InitModule)
