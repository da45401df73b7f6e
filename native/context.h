// A llama_context with one unified KV cache shared by all sequences, and the batched step.
#pragma once

#include "common.h"
#include "ggml-cpu.h"
#include "llama.h"
#include "sampler.h"
#include "worker-pool.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <vector>

class Model;

class Context : public Napi::ObjectWrap<Context> {
  public:
    static Napi::Function Init(Napi::Env env);
    static Napi::Value Create(const Napi::CallbackInfo & info, Model * model);
    static Napi::FunctionReference constructor;

    explicit Context(const Napi::CallbackInfo & info);
    ~Context() override;

  private:
    struct Batch;

    Napi::Value SetSampler(const Napi::CallbackInfo & info);
    Napi::Value ClearSampler(const Napi::CallbackInfo & info);
    Napi::Value AcceptTokens(const Napi::CallbackInfo & info);
    Napi::Value Step(const Napi::CallbackInfo & info);
    Napi::Value PickDeferred(const Napi::CallbackInfo & info);
    Napi::Value CancelPick(const Napi::CallbackInfo & info);
    Napi::Value Embed(const Napi::CallbackInfo & info);
    Napi::Value DecodeEmbeddings(const Napi::CallbackInfo & info);
    Napi::Value SeqRemove(const Napi::CallbackInfo & info);
    Napi::Value SeqCopy(const Napi::CallbackInfo & info);
    Napi::Value SeqKeep(const Napi::CallbackInfo & info);
    Napi::Value SeqPosMin(const Napi::CallbackInfo & info);
    Napi::Value SeqPosMax(const Napi::CallbackInfo & info);
    Napi::Value Clear(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);

    // Guards every call: not disposed, and no step running on a worker thread (the JS side
    // serialises steps, but a second concurrent call must be refused, not race).
    llama_context * Idle(Napi::Env env) const;
    llama_context * Live(Napi::Env env) const;
    // The sampler of `seq` for one user (see SequenceSampler::TryClaim); throws when it has none
    // or another user holds it.
    std::shared_ptr<SequenceSampler> Claim(Napi::Env env, int32_t seq);
    int32_t SeqArg(const Napi::CallbackInfo & info, size_t i) const;
    std::shared_ptr<Batch> ReadPlan(const Napi::CallbackInfo & info, bool need_samplers);
    int32_t Decode(const Batch & batch);
    int32_t DecodeAndWait(const Batch & batch);
    void SampleRows(Batch & batch);
    std::function<void()> Settler(const Napi::CallbackInfo & info);
    void Free();

    llama_context * ctx_ = nullptr;
    ggml_threadpool * threadpool_ = nullptr;
    Model * model_ = nullptr;
    Napi::ObjectReference model_ref_;
    llama_batch batch_{};
    int32_t n_ctx_ = 0, n_seq_max_ = 0, n_batch_ = 0;
    bool encoder_only_ = false;
    // Reported to V8 with AdjustExternalMemory while the context lives (ContextBytes).
    int64_t external_bytes_ = 0;
    std::atomic<bool> busy_{false};
    // Shared with the step or deferred pick using one: clearSampler and setSampler may drop a
    // sampler whose pick is running (cancelled, it ends at its next block).
    std::map<int32_t, std::shared_ptr<SequenceSampler>> samplers_;
    // Deferred picks running on workers (dispose waits until none does); touched on the JS thread only.
    int32_t picks_in_flight_ = 0;
    // Sequences sample side by side: with a large vocabulary, sampling 32 sequences one after
    // another costs as much as the GPU's whole decode step. Made on first use.
    std::unique_ptr<WorkerPool> sampling_pool_;
};
