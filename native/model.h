// A loaded llama_model exposed to JS. Contexts keep a reference to their model object.
#pragma once

#include "common.h"
#include "llama.h"
#include "tokenize.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

class Model : public Napi::ObjectWrap<Model> {
  public:
    static Napi::Function Init(Napi::Env env);
    static Napi::Value Load(const Napi::CallbackInfo & info);
    static Napi::FunctionReference constructor;

    explicit Model(const Napi::CallbackInfo & info);
    ~Model() override;

    // Throws a coded JS error when the model was disposed.
    llama_model * Get(Napi::Env env) const;
    const llama_vocab * vocab() const { return vocab_; }
    // Endpoints of the RPC workers holding some of the layers (empty: all local).
    const std::vector<std::string> & rpc_workers() const { return rpc_workers_; }
    std::atomic<int> live_contexts{0};

  private:
    Napi::Object Info(Napi::Env env);
    Napi::Value Tokenize(const Napi::CallbackInfo & info);
    Napi::Value TokenizeAsync(const Napi::CallbackInfo & info);
    Napi::Value Detokenize(const Napi::CallbackInfo & info);
    Napi::Value TokenBytes(const Napi::CallbackInfo & info);
    Napi::Value IsEog(const Napi::CallbackInfo & info);
    Napi::Value DeviceMemory(const Napi::CallbackInfo & info);
    Napi::Value CreateContext(const Napi::CallbackInfo & info);
    Napi::Value LoadProjector(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
    void Free();
    // Found on first tokenization: a walk over the whole vocabulary.
    const std::vector<SpecialToken> & Specials();

    llama_model * model_ = nullptr;
    const llama_vocab * vocab_ = nullptr;
    std::unique_ptr<std::vector<SpecialToken>> specials_;
    int pending_tokenizations = 0;
    std::vector<std::string> rpc_workers_;
};
