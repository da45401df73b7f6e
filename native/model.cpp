#include "model.h"

#include "context.h"
#include "projector.h"
#include "tokenize.h"
#include "rpc.h"

#include <memory>
#include <stdexcept>
#include <vector>

Napi::FunctionReference Model::constructor;

Napi::Function Model::Init(Napi::Env env) {
    Napi::Function fn = DefineClass(env, "Model", {
        InstanceMethod("tokenize", &Model::Tokenize),
        InstanceMethod("tokenizeAsync", &Model::TokenizeAsync),
        InstanceMethod("detokenize", &Model::Detokenize),
        InstanceMethod("tokenBytes", &Model::TokenBytes),
        InstanceMethod("isEog", &Model::IsEog),
        InstanceMethod("deviceMemory", &Model::DeviceMemory),
        InstanceMethod("createContext", &Model::CreateContext),
        InstanceMethod("loadProjector", &Model::LoadProjector),
        InstanceMethod("dispose", &Model::Dispose),
    });
    return KeepConstructor(constructor, fn);
}

Model::Model(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Model>(info) {
    // Constructed only by Load with an External holding the loaded model.
    model_ = ExternalArg<llama_model>(info, 1, "Model cannot be constructed directly; use loadModel()");
    vocab_ = llama_model_get_vocab(model_);
    g_liveModels++;
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), static_cast<int64_t>(llama_model_size(model_)));
}

Model::~Model() { Free(); }

void Model::Free() {
    if (model_ == nullptr) return;
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -static_cast<int64_t>(llama_model_size(model_)));
    llama_model_free(model_);
    model_ = nullptr;
    vocab_ = nullptr;
    g_liveModels--;
}

llama_model * Model::Get(Napi::Env env) const {
    if (model_ == nullptr) ThrowCoded(env, "model is disposed", "ERR_DISPOSED");
    return model_;
}

struct LoadJob {
    std::string path;
    llama_model_params params = llama_model_default_params();
    std::vector<ggml_backend_dev_t> devices;
    std::vector<std::string> rpc_workers;
    uint32_t rpc_timeout_ms = 0;
    Napi::ThreadSafeFunction progress;
    bool has_progress = false;
    llama_model * model = nullptr;
    std::map<std::string, double> weight_buffers;
};

static bool ReportProgress(float progress, void * user_data) {
    auto * job = static_cast<LoadJob *>(user_data);
    job->progress.NonBlockingCall([progress](Napi::Env env, Napi::Function fn) {
        fn.Call({Napi::Number::New(env, progress)});
    });
    return true;
}

// Devices chosen by init(): empty = CPU only (the null terminator alone).
std::vector<ggml_backend_dev_t> & ModelDevices();

static std::vector<std::string> StringArray(Napi::Env env, const Napi::Object & o, const char * key) {
    std::vector<std::string> out;
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return out;
    if (!v.IsArray()) ThrowCoded(env, std::string(key) + " must be an array of strings", "ERR_INVALID_ARG");
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Value item = a.Get(i);
        if (!item.IsString()) ThrowCoded(env, std::string(key) + " must be an array of strings", "ERR_INVALID_ARG");
        out.push_back(item.As<Napi::String>().Utf8Value());
    }
    return out;
}

// loadModel(path, { gpuLayers, mainGpu, useMmap, rpc, rpcTimeoutMs, onProgress }) -> Promise<Model>
// rpc ("host:port" of rpc-servers) adds their devices after init()'s: layers are spread over
// all of them as llama.cpp's --rpc does.
Napi::Value Model::Load(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto job = std::make_shared<LoadJob>();
    job->path = StringArg(info, 0, "path");
    Napi::Object options = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    job->rpc_workers = StringArray(env, options, "rpc");
    job->rpc_timeout_ms = OptionalNumber<uint32_t>(options, "rpcTimeoutMs", 0);
    job->params.n_gpu_layers = OptionalNumber<int32_t>(options, "gpuLayers", -1);
    job->params.main_gpu = OptionalNumber<int32_t>(options, "mainGpu", 0);
    if (!OptionalBool(options, "useMmap", true)) job->params.load_mode = LLAMA_LOAD_MODE_NONE;
    Napi::Value on_progress = options.Get("onProgress");
    if (on_progress.IsFunction()) {
        job->progress = Napi::ThreadSafeFunction::New(env, on_progress.As<Napi::Function>(), "vllama.loadProgress", 0, 1);
        job->has_progress = true;
        job->params.progress_callback = ReportProgress;
        job->params.progress_callback_user_data = job.get();
    }
    return PromiseWorker::Run(env,
        [job]() {
            // The progress callback ends with the load, however the load ends.
            struct ProgressRelease {
                LoadJob & job;
                ~ProgressRelease() { if (job.has_progress) job.progress.Release(); }
            } progress_release{*job};
            job->devices = ModelDevices();
            for (ggml_backend_dev_t dev : ConnectRpcWorkers(job->rpc_workers, job->rpc_timeout_ms)) job->devices.push_back(dev);
            job->devices.push_back(nullptr);
            job->params.devices = job->devices.data();
            TakeLastLlamaError();
            {
                // Released however the load ends: a later log line on this pool thread must not reach a finished job.
                struct Capture {
                    explicit Capture(std::map<std::string, double> * out) { CaptureWeightBuffers(out); }
                    ~Capture() { CaptureWeightBuffers(nullptr); }
                } capture{&job->weight_buffers};
                job->model = llama_model_load_from_file(job->path.c_str(), job->params);
            }
            try {
                // A worker lost during the load: its layers are missing, whatever the load says.
                CheckRpcWorkers(job->rpc_workers);
            } catch (...) {
                if (job->model != nullptr) llama_model_free(job->model);
                job->model = nullptr;
                throw;
            }
            if (job->model == nullptr) {
                std::string reason = TakeLastLlamaError();
                throw std::runtime_error("failed to load model '" + job->path + "'" + (reason.empty() ? "" : ": " + reason));
            }
        },
        [job](Napi::Env env) -> Napi::Value {
            Napi::Object model = constructor.New({Napi::External<llama_model>::New(env, job->model)});
            Unwrap(model)->rpc_workers_ = job->rpc_workers;
            Napi::Object info = Unwrap(model)->Info(env);
            Napi::Object buffers = Napi::Object::New(env);
            for (const auto & [name, mib] : job->weight_buffers) buffers.Set(name, mib);
            info.Set("weightBuffersMiB", buffers);
            model.Set("info", info);
            return model;
        },
        "ERR_MODEL_LOAD");
}

// deviceMemory() -> { free, total }: bytes of the model's GPUs now (0 when it runs on the CPU
// only), read after the weights are loaded so the KV cache can be sized from what is left.
Napi::Value Model::DeviceMemory(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Get(env);
    size_t free_sum = 0, total_sum = 0;
    for (ggml_backend_dev_t dev : ModelDevices()) {
        size_t free = 0, total = 0;
        ggml_backend_dev_memory(dev, &free, &total);
        free_sum += free;
        total_sum += total;
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("free", static_cast<double>(free_sum));
    r.Set("total", static_cast<double>(total_sum));
    return r;
}

static std::string MetaString(const llama_model * model, const char * key) {
    char buf[256];
    int32_t n = llama_model_meta_val_str(model, key, buf, sizeof buf);
    return n < 0 ? std::string() : std::string(buf, std::min<size_t>(n, sizeof buf - 1));
}

Napi::Object Model::Info(Napi::Env env) {
    llama_model * model = Get(env);
    Napi::Object o = Napi::Object::New(env);
    char desc[256];
    llama_model_desc(model, desc, sizeof desc);
    o.Set("architecture", MetaString(model, "general.architecture"));
    o.Set("description", std::string(desc));
    o.Set("parameterCount", static_cast<double>(llama_model_n_params(model)));
    o.Set("sizeBytes", static_cast<double>(llama_model_size(model)));
    o.Set("contextLengthTrained", llama_model_n_ctx_train(model));
    o.Set("embeddingLength", llama_model_n_embd(model));
    o.Set("layerCount", llama_model_n_layer(model));
    o.Set("vocabSize", llama_vocab_n_tokens(vocab_));
    o.Set("hasEncoder", llama_model_has_encoder(model));
    o.Set("hasDecoder", llama_model_has_decoder(model));
    using TokenOf = llama_token (*)(const llama_vocab *);
    for (auto [name, token_of] : {std::pair<const char *, TokenOf>{"bos", llama_vocab_bos}, {"eos", llama_vocab_eos}, {"eot", llama_vocab_eot}}) {
        o.Set(name, token_of(vocab_));
    }
    o.Set("addBos", llama_vocab_get_add_bos(vocab_));
    o.Set("addEos", llama_vocab_get_add_eos(vocab_));
    Napi::Object fim = Napi::Object::New(env);
    for (auto [name, token_of] : {std::pair<const char *, TokenOf>{"pre", llama_vocab_fim_pre}, {"suf", llama_vocab_fim_suf},
                                  {"mid", llama_vocab_fim_mid}, {"pad", llama_vocab_fim_pad}, {"rep", llama_vocab_fim_rep},
                                  {"sep", llama_vocab_fim_sep}}) {
        fim.Set(name, token_of(vocab_));
    }
    o.Set("fim", fim);
    const char * tmpl = llama_model_chat_template(model, nullptr);
    o.Set("chatTemplate", tmpl ? std::string(tmpl) : std::string());
    Napi::Object meta = Napi::Object::New(env);
    std::vector<char> key(512), val(4096);
    for (int32_t i = 0; i < llama_model_meta_count(model); i++) {
        int32_t kn = llama_model_meta_key_by_index(model, i, key.data(), key.size());
        int32_t vn = llama_model_meta_val_str_by_index(model, i, val.data(), val.size());
        if (vn >= static_cast<int32_t>(val.size())) {
            val.resize(vn + 1);
            vn = llama_model_meta_val_str_by_index(model, i, val.data(), val.size());
        }
        if (kn < 0 || vn < 0) continue;
        meta.Set(std::string(key.data(), std::min<size_t>(kn, key.size() - 1)), std::string(val.data(), vn));
    }
    o.Set("metadata", meta);
    return o;
}

const std::vector<SpecialToken> & Model::Specials() {
    if (!specials_) specials_ = std::make_unique<std::vector<SpecialToken>>(CollectSpecialTokens(vocab_));
    return *specials_;
}

// tokenize(text, addSpecial, parseSpecial) -> Int32Array
Napi::Value Model::Tokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Get(env);
    std::string text = StringArg(info, 0, "text");
    bool add_special = info.Length() > 1 && info[1].ToBoolean();
    bool parse_special = info.Length() > 2 && info[2].ToBoolean();
    try {
        return ToTypedArray(env, TokenizeText(vocab_, Specials(), text, add_special, parse_special));
    } catch (const std::exception & e) {
        ThrowCoded(env, e.what(), "ERR_TOKENIZE");
    }
}

// tokenizeAsync(text, addSpecial, parseSpecial) -> Promise<Int32Array>, on a libuv worker thread:
// a 10 MB prompt held the JS thread 6-11 s (issue 13, finding 3). The model cannot be disposed
// while one runs (Dispose answers ERR_BUSY) and its JS object is held until it settles.
Napi::Value Model::TokenizeAsync(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Get(env);
    auto text = std::make_shared<std::string>(StringArg(info, 0, "text"));
    const bool add_special = info.Length() > 1 && info[1].ToBoolean();
    const bool parse_special = info.Length() > 2 && info[2].ToBoolean();
    const llama_vocab * vocab = vocab_;
    const std::vector<SpecialToken> * specials = &Specials();
    auto tokens = std::make_shared<std::vector<llama_token>>();
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
    pending_tokenizations++;
    return PromiseWorker::Run(
        env,
        [=] { *tokens = TokenizeText(vocab, *specials, *text, add_special, parse_special); },
        [tokens](Napi::Env env) { return ToTypedArray(env, *tokens); },
        "ERR_TOKENIZE",
        [this, self] {
            pending_tokenizations--;
            self->Reset();
        });
}

static Napi::Int32Array TokensArg(const Napi::CallbackInfo & info, size_t i) {
    if (info.Length() <= i || !info[i].IsTypedArray() ||
        info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
        ThrowCoded(info.Env(), "tokens must be an Int32Array", "ERR_INVALID_ARG");
    }
    return info[i].As<Napi::Int32Array>();
}

void CheckTokens(Napi::Env env, const llama_vocab * vocab, const int32_t * tokens, size_t n) {
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);
    for (size_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            ThrowCoded(env, "token id " + std::to_string(tokens[i]) + " is out of range [0, " +
                       std::to_string(n_vocab) + ")", "ERR_INVALID_TOKEN");
        }
    }
}

// detokenize(tokens, removeSpecial, unparseSpecial) -> string
Napi::Value Model::Detokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Get(env);
    Napi::Int32Array tokens = TokensArg(info, 0);
    CheckTokens(env, vocab_, tokens.Data(), tokens.ElementLength());
    bool remove_special = info.Length() > 1 && info[1].ToBoolean();
    bool unparse_special = info.Length() > 2 && info[2].ToBoolean();
    std::string text(tokens.ElementLength() * 8 + 16, '\0');
    int32_t n = FillGrowing(text, [&](std::string & out) {
        return llama_detokenize(vocab_, tokens.Data(), static_cast<int32_t>(tokens.ElementLength()), out.data(),
                                static_cast<int32_t>(out.size()), remove_special, unparse_special);
    });
    if (n < 0) ThrowCoded(env, "detokenization failed", "ERR_TOKENIZE");
    text.resize(n);
    return Napi::String::New(env, text);
}

// tokenBytes(token, special) -> Uint8Array (raw bytes: may end inside a UTF-8 character)
Napi::Value Model::TokenBytes(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Get(env);
    int32_t token = static_cast<int32_t>(NumberArg(info, 0, "token"));
    CheckTokens(env, vocab_, &token, 1);
    bool special = info.Length() > 1 && info[1].ToBoolean();
    char buf[256];
    int32_t n = llama_token_to_piece(vocab_, token, buf, sizeof buf, 0, special);
    std::vector<char> big;
    const char * data = buf;
    if (n < 0) {
        big.resize(-n);
        n = llama_token_to_piece(vocab_, token, big.data(), static_cast<int32_t>(big.size()), 0, special);
        data = big.data();
    }
    Napi::Uint8Array out = Napi::Uint8Array::New(env, std::max(n, 0));
    std::copy(data, data + std::max(n, 0), out.Data());
    return out;
}

Napi::Value Model::IsEog(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Get(env);
    return Napi::Boolean::New(env, llama_vocab_is_eog(vocab_, static_cast<llama_token>(NumberArg(info, 0, "token"))));
}

Napi::Value Model::CreateContext(const Napi::CallbackInfo & info) {
    return Context::Create(info, this);
}

Napi::Value Model::LoadProjector(const Napi::CallbackInfo & info) {
    return Projector::Load(info, this);
}

Napi::Value Model::Dispose(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (live_contexts > 0) ThrowCoded(env, "model still has live contexts or a projector; dispose them first", "ERR_BUSY");
    if (pending_tokenizations > 0) ThrowCoded(env, "model is still tokenizing; wait for it first", "ERR_BUSY");
    Free();
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
}
