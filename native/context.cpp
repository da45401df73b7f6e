#include "context.h"

#include "model.h"
#include "rpc.h"

// llama_get_memory_breakdown: llama.cpp's staging API (exported by libllama of the same release).
#include "llama-ext.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

#include <pthread.h>
#include <sched.h>

Napi::FunctionReference Context::constructor;

void CheckTokens(Napi::Env env, const llama_vocab * vocab, const int32_t * tokens, size_t n);

Napi::Function Context::Init(Napi::Env env) {
    Napi::Function fn = DefineClass(env, "Context", {
        InstanceMethod("setSampler", &Context::SetSampler),
        InstanceMethod("clearSampler", &Context::ClearSampler),
        InstanceMethod("acceptTokens", &Context::AcceptTokens),
        InstanceMethod("step", &Context::Step),
        InstanceMethod("pickDeferred", &Context::PickDeferred),
        InstanceMethod("cancelPick", &Context::CancelPick),
        InstanceMethod("embed", &Context::Embed),
        InstanceMethod("decodeEmbeddings", &Context::DecodeEmbeddings),
        InstanceMethod("seqRemove", &Context::SeqRemove),
        InstanceMethod("seqCopy", &Context::SeqCopy),
        InstanceMethod("seqKeep", &Context::SeqKeep),
        InstanceMethod("seqPosMin", &Context::SeqPosMin),
        InstanceMethod("seqPosMax", &Context::SeqPosMax),
        InstanceMethod("clear", &Context::Clear),
        InstanceMethod("dispose", &Context::Dispose),
    });
    return KeepConstructor(constructor, fn);
}

static enum ggml_type CacheType(Napi::Env env, const std::string & name) {
    return NamedChoice<enum ggml_type>(env, "KV cache type", name,
        {{"f16", GGML_TYPE_F16}, {"q8_0", GGML_TYPE_Q8_0}, {"q4_0", GGML_TYPE_Q4_0}, {"f32", GGML_TYPE_F32}});
}

static enum llama_pooling_type Pooling(Napi::Env env, const std::string & name) {
    return NamedChoice<enum llama_pooling_type>(env, "pooling", name,
        {{"model", LLAMA_POOLING_TYPE_UNSPECIFIED}, {"mean", LLAMA_POOLING_TYPE_MEAN}, {"cls", LLAMA_POOLING_TYPE_CLS},
         {"last", LLAMA_POOLING_TYPE_LAST}, {"none", LLAMA_POOLING_TYPE_NONE}});
}

static enum llama_flash_attn_type FlashAttn(Napi::Env env, const std::string & name) {
    return NamedChoice<enum llama_flash_attn_type>(env, "flashAttn", name,
        {{"auto", LLAMA_FLASH_ATTN_TYPE_AUTO}, {"on", LLAMA_FLASH_ATTN_TYPE_ENABLED}, {"off", LLAMA_FLASH_ATTN_TYPE_DISABLED}});
}

// Bytes one device holds for a context: its share of the weights, of the KV cache, of the compute buffers.
struct DeviceMemory {
    std::string device, description;
    size_t model = 0, context = 0, compute = 0;
};

struct CreateJob {
    llama_context_params params = llama_context_default_params();
    llama_model * model = nullptr;
    llama_context * ctx = nullptr;
    ggml_threadpool * threadpool = nullptr;
    std::vector<DeviceMemory> memory;
};

// Per device, summed over its buffer types (host buffers count as the CPU's). Read once the
// context exists: later reads would race a running step's compute buffers.
static std::vector<DeviceMemory> MemoryByDevice(const llama_context * ctx) {
    std::vector<DeviceMemory> out;
    for (const auto & [buft, mb] : llama_get_memory_breakdown(ctx)) {
        ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
        const std::string name = dev ? ggml_backend_dev_name(dev) : "CPU";
        auto it = std::find_if(out.begin(), out.end(), [&](const DeviceMemory & d) { return d.device == name; });
        if (it == out.end()) it = out.insert(out.end(), DeviceMemory{name, dev ? ggml_backend_dev_description(dev) : "CPU"});
        it->model += mb.model;
        it->context += mb.context;
        it->compute += mb.compute;
    }
    return out;
}

static Napi::Array ToJs(Napi::Env env, const std::vector<DeviceMemory> & memory) {
    Napi::Array out = Napi::Array::New(env, memory.size());
    for (size_t i = 0; i < memory.size(); i++) {
        Napi::Object d = Napi::Object::New(env);
        d.Set("device", memory[i].device);
        d.Set("description", memory[i].description);
        d.Set("modelBytes", static_cast<double>(memory[i].model));
        d.Set("contextBytes", static_cast<double>(memory[i].context));
        d.Set("computeBytes", static_cast<double>(memory[i].compute));
        out.Set(i, d);
    }
    return out;
}

// The CPU backend's threadpool functions, looked up through its registry: with prebuilt
// libraries the CPU backend is a module loaded at run time, not a library we link.
template <typename Fn>
static Fn * CpuBackendFn(const char * name) {
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (cpu == nullptr) return nullptr;
    return reinterpret_cast<Fn *>(ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(cpu), name));
}

// Without a threadpool of its own, ggml starts and joins its worker threads on every graph
// compute: a decode step of a small batch then costs twice as long (measured on 2 cores).
static ggml_threadpool * AttachThreadpool(llama_context * ctx, int32_t n_threads) {
    auto * create = CpuBackendFn<decltype(ggml_threadpool_new)>("ggml_threadpool_new");
    if (create == nullptr) return nullptr;
    ggml_threadpool_params params = ggml_threadpool_params_default(n_threads);
    // No busy-polling between steps: the idle workers would take the cores from the event loop
    // (HTTP streaming, the next step's scheduling) on machines with few cores.
    params.poll = 0;
    ggml_threadpool * pool = create(&params);
    if (pool != nullptr) llama_attach_threadpool(ctx, pool, pool);
    return pool;
}

// Bytes a context holds beside the model's weights: its KV cache (a K and a V row per cell and
// layer; models with their own head width or a sliding-window cache hold somewhat more or less)
// and its output buffer (a row of logits, or of embeddings, per output). V8 is told, as it is
// told of the weights, so that it weighs them when it decides to collect a disposed-of context.
static int64_t ContextBytes(llama_context * ctx, const llama_context_params & p) {
    const llama_model * m = llama_get_model(ctx);
    const int64_t head_width = llama_model_n_embd(m) / std::max(1, llama_model_n_head(m));
    const int64_t kv_width = head_width * llama_model_n_head_kv(m);
    const int64_t cell_bytes = static_cast<int64_t>(ggml_row_size(p.type_k, kv_width) + ggml_row_size(p.type_v, kv_width));
    const int64_t kv = static_cast<int64_t>(llama_n_ctx(ctx)) * llama_model_n_layer(m) * cell_bytes;
    const int64_t row = p.embeddings ? llama_model_n_embd(m) : llama_vocab_n_tokens(llama_model_get_vocab(m));
    return kv + static_cast<int64_t>(p.n_outputs_max) * row * static_cast<int64_t>(sizeof(float));
}

// model.createContext({ kvCells, nSeqMax, batchCapacity, nUbatch, flashAttn, typeK, typeV, threads, embeddings, pooling })
Napi::Value Context::Create(const Napi::CallbackInfo & info, Model * model) {
    Napi::Env env = info.Env();
    Napi::Object o = ObjectArg(info, 0, "options");
    auto job = std::make_shared<CreateJob>();
    job->model = model->Get(env);
    auto & p = job->params;
    p.n_ctx = OptionalNumber<uint32_t>(o, "kvCells", 4096);
    p.n_seq_max = OptionalNumber<uint32_t>(o, "nSeqMax", 1);
    p.n_batch = OptionalNumber<uint32_t>(o, "batchCapacity", 512);
    p.n_ubatch = std::min(p.n_batch, OptionalNumber<uint32_t>(o, "nUbatch", 512));
    if (p.n_seq_max < 1 || p.n_seq_max > 256) ThrowCoded(env, "nSeqMax must be in [1, 256]", "ERR_INVALID_ARG");
    if (p.n_ctx < 1 || p.n_batch < 1) ThrowCoded(env, "kvCells and batchCapacity must be positive", "ERR_INVALID_ARG");
    // One cache for all sequences: cells are taken on demand, not split per sequence.
    p.kv_unified = true;
    // llama.cpp sizes its output buffer for at least one row per sequence id; n_batch alone
    // (clamped to a small n_ctx) can be less than that.
    p.n_outputs_max = std::max(std::min(p.n_batch, p.n_ctx), p.n_seq_max);
    p.flash_attn_type = FlashAttn(env, OptionalString(o, "flashAttn", "auto"));
    p.type_k = CacheType(env, OptionalString(o, "typeK", "f16"));
    p.type_v = CacheType(env, OptionalString(o, "typeV", "f16"));
    int32_t threads = OptionalNumber<int32_t>(o, "threads", static_cast<int32_t>(std::thread::hardware_concurrency()));
    p.n_threads = p.n_threads_batch = std::max(1, threads);
    p.embeddings = OptionalBool(o, "embeddings", false);
    p.pooling_type = Pooling(env, OptionalString(o, "pooling", "model"));
    p.no_perf = true;
    Napi::Object model_obj = info.This().As<Napi::Object>();
    auto model_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(model_obj));
    return PromiseWorker::Run(env,
        [job]() {
            TakeLastLlamaError();
            job->ctx = llama_init_from_model(job->model, job->params);
            if (job->ctx == nullptr) {
                std::string reason = TakeLastLlamaError();
                throw std::runtime_error("failed to create context" + (reason.empty() ? "" : ": " + reason));
            }
            job->threadpool = AttachThreadpool(job->ctx, job->params.n_threads);
            job->memory = MemoryByDevice(job->ctx);
        },
        [job, model_ref](Napi::Env env) -> Napi::Value {
            Napi::Object ctx = constructor.New({Napi::External<llama_context>::New(env, job->ctx), model_ref->Value()});
            Context * self = Unwrap(ctx);
            self->threadpool_ = job->threadpool;
            ctx.Set("memoryByDevice", ToJs(env, job->memory));
            self->external_bytes_ = ContextBytes(job->ctx, job->params);
            Napi::MemoryManagement::AdjustExternalMemory(env, self->external_bytes_);
            return ctx;
        },
        "ERR_CONTEXT");
}

Context::Context(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Context>(info) {
    ctx_ = ExternalArg<llama_context>(info, 2, "Context cannot be constructed directly; use model.createContext()");
    Napi::Object model = ObjectArg(info, 1, "model");
    model_ref_ = Napi::Persistent(model);
    model_ = Model::Unwrap(model);
    model_->live_contexts++;
    n_ctx_ = static_cast<int32_t>(llama_n_ctx(ctx_));
    n_seq_max_ = static_cast<int32_t>(llama_n_seq_max(ctx_));
    n_batch_ = static_cast<int32_t>(llama_n_batch(ctx_));
    const llama_model * m = llama_get_model(ctx_);
    encoder_only_ = llama_model_has_encoder(m) && !llama_model_has_decoder(m);
    batch_ = llama_batch_init(n_batch_, 0, 1);
    g_liveContexts++;
    Napi::Object self = info.This().As<Napi::Object>();
    self.Set("kvCells", n_ctx_);
    self.Set("nSeqMax", n_seq_max_);
    self.Set("batchCapacity", n_batch_);
    self.Set("nUbatch", static_cast<int32_t>(llama_n_ubatch(ctx_)));
}

Context::~Context() { Free(); }

void Context::Free() {
    if (ctx_ == nullptr) return;
    samplers_.clear();
    sampling_pool_.reset();
    llama_batch_free(batch_);
    llama_free(ctx_);
    ctx_ = nullptr;
    if (threadpool_ != nullptr) CpuBackendFn<decltype(ggml_threadpool_free)>("ggml_threadpool_free")(threadpool_);
    threadpool_ = nullptr;
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
    external_bytes_ = 0;
    model_->live_contexts--;
    model_ref_.Reset();
    g_liveContexts--;
}

llama_context * Context::Live(Napi::Env env) const {
    if (ctx_ == nullptr) ThrowCoded(env, "context is disposed", "ERR_DISPOSED");
    return ctx_;
}

llama_context * Context::Idle(Napi::Env env) const {
    Live(env);
    if (busy_) ThrowCoded(env, "context is busy with a step", "ERR_BUSY");
    return ctx_;
}

std::shared_ptr<SequenceSampler> Context::Claim(Napi::Env env, int32_t seq) {
    auto it = samplers_.find(seq);
    if (it == samplers_.end()) ThrowCoded(env, "sequence " + std::to_string(seq) + " has no sampler", "ERR_INVALID_ARG");
    if (!it->second->TryClaim()) ThrowCoded(env, "sequence " + std::to_string(seq) + "'s sampler is in use", "ERR_BUSY");
    return it->second;
}

// Samplers claimed for one step or pick, released on the JS thread when it settles (or when the
// call is refused before it starts).
struct ClaimedSamplers {
    std::vector<std::shared_ptr<SequenceSampler>> list;
    ClaimedSamplers() = default;
    ClaimedSamplers(const ClaimedSamplers &) = delete;
    ClaimedSamplers & operator=(const ClaimedSamplers &) = delete;
    ~ClaimedSamplers() { ReleaseAll(); }
    void ReleaseAll() {
        for (auto & s : list) s->Release();
        list.clear();
    }
};

// What sampling gives per row (a step's sampled rows, a call's deferred picks), as JS reads it.
struct SampledRows {
    std::vector<int32_t> token, top_ids;
    std::vector<float> logprob, top_lps;
    int32_t top_n = 0;

    void Resize(size_t rows) {
        token.resize(rows);
        logprob.resize(rows);
        top_ids.assign(rows * top_n, -1);
        top_lps.assign(rows * top_n, std::numeric_limits<float>::quiet_NaN());
    }
    void Sample(size_t r, SampledToken s) {
        token[r] = s.token;
        logprob[r] = s.logprob;
    }
    int32_t * TopIds(size_t r) { return top_ids.data() + r * top_n; }
    float * TopLogprobs(size_t r) { return top_lps.data() + r * top_n; }
    void SetOn(Napi::Env env, Napi::Object r) const {
        r.Set("sampledTokens", ToTypedArray(env, token));
        r.Set("sampledLogprobs", ToTypedArray(env, logprob));
        r.Set("topN", top_n);
        r.Set("topIds", ToTypedArray(env, top_ids));
        r.Set("topLogprobs", ToTypedArray(env, top_lps));
    }
};

int32_t Context::SeqArg(const Napi::CallbackInfo & info, size_t i) const {
    double v = NumberArg(info, i, "seqId");
    if (v < 0 || v >= n_seq_max_ || v != std::floor(v)) {
        ThrowCoded(info.Env(), "seqId " + std::to_string(v) + " is out of range [0, " + std::to_string(n_seq_max_) + ")",
                   "ERR_INVALID_ARG");
    }
    return static_cast<int32_t>(v);
}

static std::vector<llama_logit_bias> LogitBias(Napi::Env env, Napi::Value v, const llama_vocab * vocab) {
    std::vector<llama_logit_bias> out;
    if (!v.IsArray()) return out;
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Value pair = a.Get(i);
        if (!pair.IsArray() || pair.As<Napi::Array>().Length() != 2) {
            ThrowCoded(env, "logitBias entries must be [token, bias] pairs", "ERR_INVALID_ARG");
        }
        int32_t token = pair.As<Napi::Array>().Get(0u).As<Napi::Number>().Int32Value();
        float bias = pair.As<Napi::Array>().Get(1u).As<Napi::Number>().FloatValue();
        CheckTokens(env, vocab, &token, 1);
        out.push_back({token, bias});
    }
    return out;
}

// grammarTriggers: {patterns: string[], tokens: number[]} (a lazy grammar's triggers).
static void GrammarTriggers(Napi::Env env, Napi::Value v, const llama_vocab * vocab, SamplerParams & p) {
    if (v.IsUndefined()) return;
    if (!v.IsObject()) ThrowCoded(env, "grammarTriggers must be {patterns, tokens}", "ERR_INVALID_ARG");
    Napi::Object o = v.As<Napi::Object>();
    Napi::Value patterns = o.Get("patterns"), tokens = o.Get("tokens");
    if (!patterns.IsArray() || !tokens.IsArray()) ThrowCoded(env, "grammarTriggers must be {patterns, tokens}", "ERR_INVALID_ARG");
    Napi::Array pa = patterns.As<Napi::Array>(), ta = tokens.As<Napi::Array>();
    for (uint32_t i = 0; i < pa.Length(); i++) p.grammar_trigger_patterns.push_back(pa.Get(i).ToString().Utf8Value());
    for (uint32_t i = 0; i < ta.Length(); i++) {
        int32_t token = ta.Get(i).ToNumber().Int32Value();
        CheckTokens(env, vocab, &token, 1);
        p.grammar_trigger_tokens.push_back(token);
    }
    if (p.grammar_trigger_patterns.empty() && p.grammar_trigger_tokens.empty()) {
        ThrowCoded(env, "a lazy grammar needs a trigger", "ERR_INVALID_ARG");
    }
}

// setSampler(seqId, params)
Napi::Value Context::SetSampler(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Idle(env);
    int32_t seq = SeqArg(info, 0);
    Napi::Object o = ObjectArg(info, 1, "params");
    SamplerParams p;
    p.temperature = OptionalNumber<float>(o, "temperature", p.temperature);
    p.top_k = OptionalNumber<int32_t>(o, "topK", p.top_k);
    p.top_p = OptionalNumber<float>(o, "topP", p.top_p);
    p.min_p = OptionalNumber<float>(o, "minP", p.min_p);
    p.typical_p = OptionalNumber<float>(o, "typicalP", p.typical_p);
    double seed = OptionalNumber<double>(o, "seed", -1);
    p.seed = seed < 0 ? LLAMA_DEFAULT_SEED : static_cast<uint32_t>(seed);
    p.repeat_last_n = OptionalNumber<int32_t>(o, "repeatLastN", p.repeat_last_n);
    p.repeat_penalty = OptionalNumber<float>(o, "repeatPenalty", p.repeat_penalty);
    p.presence_penalty = OptionalNumber<float>(o, "presencePenalty", p.presence_penalty);
    p.frequency_penalty = OptionalNumber<float>(o, "frequencyPenalty", p.frequency_penalty);
    p.logit_bias = LogitBias(env, o.Get("logitBias"), model_->vocab());
    p.grammar = OptionalString(o, "grammar", "");
    GrammarTriggers(env, o.Get("grammarTriggers"), model_->vocab(), p);
    p.grammar_prefix = OptionalString(o, "grammarPrefix", "");
    p.top_logprobs = std::max(0, OptionalNumber<int32_t>(o, "topLogprobs", 0));
    p.logprobs = OptionalBool(o, "logprobs", false);
    p.min_tokens = std::max(0, OptionalNumber<int32_t>(o, "minTokens", 0));
    try {
        TakeLastLlamaError();
        auto sampler = std::make_shared<SequenceSampler>(model_->vocab(), p);
        auto & slot = samplers_[seq];
        if (slot) slot->Cancel();  // its deferred pick, if one runs, is of no use now
        slot = std::move(sampler);
    } catch (const std::invalid_argument & e) {
        std::string reason = TakeLastLlamaError();
        ThrowCoded(env, std::string(e.what()) + (reason.empty() ? "" : ": " + reason), "ERR_GRAMMAR");
    }
    return env.Undefined();
}

Napi::Value Context::ClearSampler(const Napi::CallbackInfo & info) {
    Idle(info.Env());
    auto it = samplers_.find(SeqArg(info, 0));
    if (it == samplers_.end()) return info.Env().Undefined();
    it->second->Cancel();
    samplers_.erase(it);
    return info.Env().Undefined();
}

static void RefuseAwaitingPick(Napi::Env env, const SequenceSampler & sampler, int32_t seq) {
    if (sampler.awaiting_pick()) ThrowCoded(env, "sequence " + std::to_string(seq) + " awaits its grammar pick", "ERR_INVALID_ARG");
}

// acceptTokens(seqId, Int32Array, grammar): tokens enter the repeat-penalty window (and the
// grammar's state when `grammar` is true).
Napi::Value Context::AcceptTokens(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Idle(env);
    int32_t seq = SeqArg(info, 0);
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
        ThrowCoded(env, "tokens must be an Int32Array", "ERR_INVALID_ARG");
    }
    Napi::Int32Array tokens = info[1].As<Napi::Int32Array>();
    CheckTokens(env, model_->vocab(), tokens.Data(), tokens.ElementLength());
    ClaimedSamplers claimed;
    claimed.list.push_back(Claim(env, seq));
    RefuseAwaitingPick(env, *claimed.list[0], seq);
    claimed.list[0]->Accept(tokens.Data(), tokens.ElementLength(), info.Length() > 2 && info[2].ToBoolean());
    return env.Undefined();
}

// The plan copied out of JS memory, so the worker thread never touches JS objects.
struct Context::Batch {
    std::vector<int32_t> tokens, positions, seq_ids;
    std::vector<uint8_t> sample;
    std::vector<int32_t> rows;  // batch index of each sampled entry
    bool distinct_rows = true;  // no sequence samples twice (so rows may sample in parallel)
    std::vector<SequenceSampler *> row_samplers;  // of each sampled entry
    ClaimedSamplers claimed;
    // results
    int32_t status = 0;
    std::vector<int32_t> out_seq;
    SampledRows sampled;
    std::vector<float> embeddings;
    int32_t n_embd = 0;
    int64_t decode_ns = 0, sample_ns = 0;
};

template <typename T>
static const T * TypedData(Napi::Env env, Napi::Object plan, const char * key, napi_typedarray_type type, size_t & n) {
    Napi::Value v = plan.Get(key);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
        ThrowCoded(env, std::string("plan.") + key + " has the wrong type", "ERR_INVALID_ARG");
    }
    Napi::TypedArrayOf<T> a = v.As<Napi::TypedArrayOf<T>>();
    n = a.ElementLength();
    return a.Data();
}

std::shared_ptr<Context::Batch> Context::ReadPlan(const Napi::CallbackInfo & info, bool need_samplers) {
    Napi::Env env = info.Env();
    Napi::Object plan = ObjectArg(info, 0, "plan");
    size_t n, n_pos, n_seq, n_sample;
    const int32_t * tokens = TypedData<int32_t>(env, plan, "tokens", napi_int32_array, n);
    const int32_t * positions = TypedData<int32_t>(env, plan, "positions", napi_int32_array, n_pos);
    const int32_t * seq_ids = TypedData<int32_t>(env, plan, "seqIds", napi_int32_array, n_seq);
    const uint8_t * sample = TypedData<uint8_t>(env, plan, "sample", napi_uint8_array, n_sample);
    if (n_pos != n || n_seq != n || n_sample != n) ThrowCoded(env, "plan arrays differ in length", "ERR_INVALID_ARG");
    if (n == 0) ThrowCoded(env, "plan is empty", "ERR_INVALID_ARG");
    if (static_cast<int32_t>(n) > n_batch_) {
        ThrowCoded(env, "plan has " + std::to_string(n) + " tokens, more than batchCapacity " + std::to_string(n_batch_), "ERR_INVALID_ARG");
    }
    CheckTokens(env, model_->vocab(), tokens, n);
    auto b = std::make_shared<Batch>();
    b->tokens.assign(tokens, tokens + n);
    b->positions.assign(positions, positions + n);
    b->seq_ids.assign(seq_ids, seq_ids + n);
    b->sample.assign(sample, sample + n);
    std::vector<uint8_t> sampled(n_seq_max_, 0);
    for (size_t i = 0; i < n; i++) {
        if (seq_ids[i] < 0 || seq_ids[i] >= n_seq_max_) ThrowCoded(env, "plan.seqIds out of range", "ERR_INVALID_ARG");
        if (positions[i] < 0 || positions[i] >= n_ctx_) ThrowCoded(env, "plan.positions out of range", "ERR_INVALID_ARG");
        if (!sample[i]) continue;
        const bool first = !sampled[seq_ids[i]]++;
        b->distinct_rows = b->distinct_rows && first;
        b->rows.push_back(static_cast<int32_t>(i));
        if (!need_samplers) continue;
        if (first) {
            b->claimed.list.push_back(Claim(env, seq_ids[i]));
            RefuseAwaitingPick(env, *b->claimed.list.back(), seq_ids[i]);
        }
        SequenceSampler * sampler = samplers_[seq_ids[i]].get();
        b->row_samplers.push_back(sampler);
        b->sampled.top_n = std::max(b->sampled.top_n, sampler->wants_top());
    }
    return b;
}

int32_t Context::Decode(const Batch & b) {
    batch_.n_tokens = static_cast<int32_t>(b.tokens.size());
    for (size_t i = 0; i < b.tokens.size(); i++) {
        batch_.token[i] = b.tokens[i];
        batch_.pos[i] = b.positions[i];
        batch_.n_seq_id[i] = 1;
        batch_.seq_id[i][0] = b.seq_ids[i];
        batch_.logits[i] = b.sample[i];
    }
    return encoder_only_ ? llama_encode(ctx_, batch_) : llama_decode(ctx_, batch_);
}

void Context::SampleRows(Batch & b) {
    const size_t rows = b.rows.size();
    b.out_seq.resize(rows);
    b.sampled.Resize(rows);
    // Logits pointers are taken here, on one thread: the first call may reorder llama.cpp's outputs.
    std::vector<const float *> logits(rows);
    for (size_t r = 0; r < rows; r++) {
        const int32_t i = b.rows[r];
        logits[r] = llama_get_logits_ith(ctx_, i);
        if (logits[r] == nullptr) throw std::runtime_error("no logits: is this an embeddings context?");
        b.out_seq[r] = b.seq_ids[i];
    }
    // A row whose grammar refuses its choice is deferred (pickDeferred), unless its sequence
    // samples again later in this batch, from the state that pick would leave.
    const bool defer = b.distinct_rows;
    auto sample = [&](size_t r) {
        b.sampled.Sample(r, b.row_samplers[r]->Sample(logits[r], b.sampled.TopIds(r), b.sampled.TopLogprobs(r), defer));
    };
    if (rows < 2 || !b.distinct_rows) {
        for (size_t r = 0; r < rows; r++) sample(r);
        return;
    }
    if (!sampling_pool_) {
        const size_t cores = std::max(1u, std::thread::hardware_concurrency());
        sampling_pool_ = std::make_unique<WorkerPool>(std::min<size_t>(cores, 8) - 1);
    }
    sampling_pool_->Run(rows, sample);
}

// Ends a step on the JS thread: clears the busy flag, and releases the reference that kept this
// context alive (not garbage-collected) while the worker thread used it.
std::function<void()> Context::Settler(const Napi::CallbackInfo & info) {
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
    return [this, self]() {
        busy_ = false;
        self->Reset();
    };
}

static int64_t NowNs() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Decode outcome: 0 ok, 1 no KV room (nothing decoded; the caller frees cells and retries).
static void CheckDecode(int32_t ret) {
    if (ret != 0 && ret != 1) {
        std::string reason = TakeLastLlamaError();
        throw std::runtime_error("llama_decode failed with code " + std::to_string(ret) + (reason.empty() ? "" : ": " + reason));
    }
}

// On a GPU llama_decode only queues the work: waiting for it belongs to the decode. A lost RPC
// worker fails the decode before anything reads its outputs (its share of them is missing).
int32_t Context::DecodeAndWait(const Batch & b) {
    const int32_t status = Decode(b);
    llama_synchronize(ctx_);
    CheckRpcWorkers(model_->rpc_workers());
    CheckDecode(status);
    return status;
}

// step(plan) -> Promise<StepResult>: one llama_decode over the mixed batch, then sampling.
Napi::Value Context::Step(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Idle(env);
    auto b = ReadPlan(info, true);
    busy_ = true;
    return PromiseWorker::Run(env,
        [this, b]() {
            int64_t t0 = NowNs();
            b->status = DecodeAndWait(*b);
            int64_t t1 = NowNs();
            b->decode_ns = t1 - t0;
            if (b->status != 0) return;
            SampleRows(*b);
            b->sample_ns = NowNs() - t1;
        },
        [b](Napi::Env env) -> Napi::Value {
            Napi::Object r = Napi::Object::New(env);
            r.Set("status", b->status == 0 ? "ok" : "no_room");
            r.Set("sampledSeqIds", ToTypedArray(env, b->out_seq));
            b->sampled.SetOn(env, r);
            r.Set("decodeNs", static_cast<double>(b->decode_ns));
            r.Set("sampleNs", static_cast<double>(b->sample_ns));
            return r;
        },
        "ERR_DECODE", [b, settle = Settler(info)]() {
            b->claimed.ReleaseAll();
            settle();
        });
}

// Runs `work` on a thread of its own under SCHED_IDLE and waits for it. A deferred pick is the
// constrained sequence's own cost, but at the libuv thread's priority it took a core from the
// step's compute threads, whose spinning barriers then waited on it: on 2 cores with 2 compute
// threads (2026-12-02, demo model, scripts/grammar-cost.ts) an unconstrained neighbour ran 2.1 ms a
// token alone and 15.7-24.7 beside 256-value enum requests; at nice 19 still 12-31.9; under
// SCHED_IDLE, which runs only when a core has nothing else to do, 4.6-16.1 (1 thread: 2.8-3.6
// against 2.2-3.1 alone). Where every core computes steps the pick so waits for the gaps between
// them: the constrained sequence pays for its grammar, not its neighbours. A thread of its own
// because libuv's threads serve every other async call and a policy set on one would stay.
static void RunAtIdlePriority(const std::function<void()> & work) {
    std::exception_ptr error;
    std::thread picker([&]() {
        sched_param param{};
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
        try {
            work();
        } catch (...) {
            error = std::current_exception();
        }
    });
    picker.join();
    if (error) std::rethrow_exception(error);
}

// pickDeferred(seqIds) -> Promise<PickResult>: the picks the last steps deferred, on a worker of
// their own while further steps run (the sequences are in no step until their token is known).
// One after another: a pick is the grammar-constrained sequence's own cost, and a thread per
// pick would take more cores from the steps.
Napi::Value Context::PickDeferred(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Live(env);
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
        ThrowCoded(env, "seqIds must be an Int32Array", "ERR_INVALID_ARG");
    }
    Napi::Int32Array seq_ids = info[0].As<Napi::Int32Array>();
    struct Job {
        ClaimedSamplers claimed;
        SampledRows picked;
        int64_t sample_ns = 0;
    };
    auto job = std::make_shared<Job>();
    for (size_t i = 0; i < seq_ids.ElementLength(); i++) {
        const int32_t seq = seq_ids[i];
        if (seq < 0 || seq >= n_seq_max_) ThrowCoded(env, "seqIds out of range", "ERR_INVALID_ARG");
        job->claimed.list.push_back(Claim(env, seq));
        if (!job->claimed.list.back()->awaiting_pick()) {
            ThrowCoded(env, "sequence " + std::to_string(seq) + " has no deferred pick", "ERR_INVALID_ARG");
        }
        job->picked.top_n = std::max(job->picked.top_n, job->claimed.list.back()->wants_top());
    }
    job->picked.Resize(job->claimed.list.size());
    picks_in_flight_++;
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
    return PromiseWorker::Run(env,
        [job]() {
            const int64_t t0 = NowNs();
            RunAtIdlePriority([&job]() {
                for (size_t r = 0; r < job->claimed.list.size(); r++) {
                    job->picked.Sample(r, job->claimed.list[r]->PickDeferred(job->picked.TopIds(r), job->picked.TopLogprobs(r)));
                }
            });
            job->sample_ns = NowNs() - t0;
        },
        [job](Napi::Env env) -> Napi::Value {
            Napi::Object r = Napi::Object::New(env);
            job->picked.SetOn(env, r);
            r.Set("sampleNs", static_cast<double>(job->sample_ns));
            return r;
        },
        "ERR_SAMPLE", [this, job, self]() {
            job->claimed.ReleaseAll();
            picks_in_flight_--;
            self->Reset();
        });
}

// cancelPick(seqId): the sequence's deferred pick, running or not yet asked for, ends at its next
// block of candidates with no token. Allowed while a step runs.
Napi::Value Context::CancelPick(const Napi::CallbackInfo & info) {
    Live(info.Env());
    auto it = samplers_.find(SeqArg(info, 0));
    if (it != samplers_.end()) it->second->Cancel();
    return info.Env().Undefined();
}

// embed(plan) -> Promise<EmbedResult>: pooled embeddings of the sequences marked in plan.sample.
Napi::Value Context::Embed(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Idle(env);
    auto b = ReadPlan(info, false);
    busy_ = true;
    return PromiseWorker::Run(env,
        [this, b]() {
            b->status = DecodeAndWait(*b);
            if (b->status != 0) return;
            b->n_embd = llama_model_n_embd(llama_get_model(ctx_));
            const bool pooled = llama_pooling_type(ctx_) != LLAMA_POOLING_TYPE_NONE;
            for (int32_t i : b->rows) {
                if (!b->out_seq.empty() && pooled && b->out_seq.back() == b->seq_ids[i]) continue;
                const float * e = pooled ? llama_get_embeddings_seq(ctx_, b->seq_ids[i]) : llama_get_embeddings_ith(ctx_, i);
                if (e == nullptr) throw std::runtime_error("no embeddings for sequence " + std::to_string(b->seq_ids[i]));
                b->out_seq.push_back(b->seq_ids[i]);
                b->embeddings.insert(b->embeddings.end(), e, e + b->n_embd);
            }
        },
        [b](Napi::Env env) -> Napi::Value {
            Napi::Object r = Napi::Object::New(env);
            r.Set("status", b->status == 0 ? "ok" : "no_room");
            r.Set("seqIds", ToTypedArray(env, b->out_seq));
            r.Set("embeddings", ToTypedArray(env, b->embeddings));
            r.Set("nEmbd", b->n_embd);
            return r;
        },
        "ERR_DECODE", Settler(info));
}

// Media chunks' rows (a projector's output), copied out of JS memory.
struct EmbeddingRows {
    std::vector<float> embd;
    std::vector<llama_pos> positions;
    std::vector<int32_t> n_seq_id;
    std::vector<llama_seq_id> seq_id;
    std::vector<llama_seq_id *> seq_ids;
    std::vector<int8_t> logits;
    bool non_causal = false;
    int32_t status = 0;
    int64_t decode_ns = 0;
};

// decodeEmbeddings({ seqIds: Int32Array, embeddings: Float32Array, positions: Int32Array, nonCausal })
//   -> Promise<{ status, decodeNs }>
// One llama_decode of embedding rows (llama_batch takes tokens or embeddings, never both), each
// into its sequence (`seqIds`, one per row: the rows of several media chunks, of several
// sequences, in one pass over the weights): `embeddings` holds n rows of the model's input width,
// `positions` n entries (4 x n, dimension-major, for M-RoPE models; any other length is refused).
// Non-causal rows (images a model attends to both ways, as mtmd_decode_use_non_causal says) must
// fit one micro-batch; each still sees only its own sequence's cells. No row is sampled.
Napi::Value Context::DecodeEmbeddings(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Idle(env);
    Napi::Object o = ObjectArg(info, 0, "rows");
    size_t n_floats = 0, n_pos = 0, n_seq = 0;
    const float * embd = TypedData<float>(env, o, "embeddings", napi_float32_array, n_floats);
    const int32_t * positions = TypedData<int32_t>(env, o, "positions", napi_int32_array, n_pos);
    const int32_t * seqs = TypedData<int32_t>(env, o, "seqIds", napi_int32_array, n_seq);
    const size_t width = static_cast<size_t>(llama_model_n_embd_inp(llama_get_model(ctx_)));
    const size_t n = n_floats / width;
    if (n == 0 || n * width != n_floats) {
        ThrowCoded(env, "rows.embeddings must hold whole rows of " + std::to_string(width) + " floats", "ERR_INVALID_ARG");
    }
    if (n_seq != n) ThrowCoded(env, "rows.seqIds must have one entry per row", "ERR_INVALID_ARG");
    // llama_decode reads as many positions a row as the model's rope takes (llama_hparams::
    // n_pos_per_embd): a shorter array would be read past its end, a longer one misread.
    const llama_rope_type rope = llama_model_rope_type(llama_get_model(ctx_));
    const size_t per_row = rope == LLAMA_ROPE_TYPE_MROPE || rope == LLAMA_ROPE_TYPE_IMROPE ? 4 : 1;
    if (n_pos != per_row * n) {
        ThrowCoded(env, "rows.positions must have " + std::to_string(per_row * n) + " entries (" + std::to_string(per_row) +
                   (per_row == 1 ? " a row" : " a row, M-RoPE") + "), not " + std::to_string(n_pos), "ERR_INVALID_ARG");
    }
    if (static_cast<int32_t>(n) > n_batch_) {
        ThrowCoded(env, std::to_string(n) + " rows are more than batchCapacity " + std::to_string(n_batch_), "ERR_INVALID_ARG");
    }
    for (size_t i = 0; i < n; i++) {
        if (seqs[i] < 0 || seqs[i] >= n_seq_max_) ThrowCoded(env, "rows.seqIds out of range", "ERR_INVALID_ARG");
    }
    for (size_t i = 0; i < n_pos; i++) {
        if (positions[i] < 0 || positions[i] >= n_ctx_) ThrowCoded(env, "rows.positions out of range", "ERR_INVALID_ARG");
    }
    auto r = std::make_shared<EmbeddingRows>();
    r->non_causal = OptionalBool(o, "nonCausal", false);
    if (r->non_causal && n > llama_n_ubatch(ctx_)) {
        ThrowCoded(env, "non-causal rows (" + std::to_string(n) + ") must fit one micro-batch of " +
                   std::to_string(llama_n_ubatch(ctx_)), "ERR_INVALID_ARG");
    }
    r->embd.assign(embd, embd + n_floats);
    r->positions.assign(positions, positions + n_pos);
    r->n_seq_id.assign(n, 1);
    r->seq_id.assign(seqs, seqs + n);
    r->seq_ids.resize(n + 1);
    for (size_t i = 0; i < n; i++) r->seq_ids[i] = &r->seq_id[i];
    r->seq_ids[n] = nullptr;
    r->logits.assign(n, 0);
    busy_ = true;
    return PromiseWorker::Run(env,
        [this, r, n]() {
            llama_batch batch{static_cast<int32_t>(n), nullptr, r->embd.data(), r->positions.data(), r->n_seq_id.data(), r->seq_ids.data(), r->logits.data()};
            const int64_t t0 = NowNs();
            if (r->non_causal) llama_set_causal_attn(ctx_, false);
            r->status = llama_decode(ctx_, batch);
            if (r->non_causal) llama_set_causal_attn(ctx_, true);
            CheckDecode(r->status);
            llama_synchronize(ctx_);
            r->decode_ns = NowNs() - t0;
        },
        [r](Napi::Env env) -> Napi::Value {
            Napi::Object out = Napi::Object::New(env);
            out.Set("status", r->status == 0 ? "ok" : "no_room");
            out.Set("decodeNs", static_cast<double>(r->decode_ns));
            return out;
        },
        "ERR_DECODE", Settler(info));
}

static int32_t PosArg(const Napi::CallbackInfo & info, size_t i) {
    return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Int32Value() : -1;
}

Napi::Value Context::SeqRemove(const Napi::CallbackInfo & info) {
    llama_context * ctx = Idle(info.Env());
    return Napi::Boolean::New(info.Env(), llama_memory_seq_rm(llama_get_memory(ctx), SeqArg(info, 0), PosArg(info, 1), PosArg(info, 2)));
}

Napi::Value Context::SeqCopy(const Napi::CallbackInfo & info) {
    llama_context * ctx = Idle(info.Env());
    int32_t src = SeqArg(info, 0), dst = SeqArg(info, 1);
    llama_memory_seq_cp(llama_get_memory(ctx), src, dst, PosArg(info, 2), PosArg(info, 3));
    return info.Env().Undefined();
}

Napi::Value Context::SeqKeep(const Napi::CallbackInfo & info) {
    llama_context * ctx = Idle(info.Env());
    llama_memory_seq_keep(llama_get_memory(ctx), SeqArg(info, 0));
    return info.Env().Undefined();
}

Napi::Value Context::SeqPosMin(const Napi::CallbackInfo & info) {
    llama_context * ctx = Idle(info.Env());
    return Napi::Number::New(info.Env(), llama_memory_seq_pos_min(llama_get_memory(ctx), SeqArg(info, 0)));
}

Napi::Value Context::SeqPosMax(const Napi::CallbackInfo & info) {
    llama_context * ctx = Idle(info.Env());
    return Napi::Number::New(info.Env(), llama_memory_seq_pos_max(llama_get_memory(ctx), SeqArg(info, 0)));
}

Napi::Value Context::Clear(const Napi::CallbackInfo & info) {
    llama_context * ctx = Idle(info.Env());
    llama_memory_clear(llama_get_memory(ctx), true);
    return info.Env().Undefined();
}

Napi::Value Context::Dispose(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (busy_) ThrowCoded(env, "context is busy with a step", "ERR_BUSY");
    if (picks_in_flight_ > 0) ThrowCoded(env, "context is busy with a grammar pick", "ERR_BUSY");
    Free();
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
}
