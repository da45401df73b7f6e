// A model's multimodal projector (llama.cpp's mtmd, an "mmproj" GGUF): images and audio in,
// chunks of text tokens and media out, a media chunk's embedding rows computed off the JS thread.
// Decoding those rows into a sequence belongs to the Context (decodeEmbeddings).
#pragma once

#include "common.h"
#include "mtmd.h"

#include <atomic>

class Model;

class Projector : public Napi::ObjectWrap<Projector> {
  public:
    static Napi::Function Init(Napi::Env env);
    static Napi::Value Load(const Napi::CallbackInfo & info, Model * model);
    static Napi::FunctionReference constructor;

    explicit Projector(const Napi::CallbackInfo & info);
    ~Projector() override;

  private:
    Napi::Value Tokenize(const Napi::CallbackInfo & info);
    Napi::Value Prepare(const Napi::CallbackInfo & info);
    Napi::Value Encode(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
    mtmd_context * Live(Napi::Env env) const;
    // Keeps this object alive and counted while a worker uses it; the returned settler undoes it.
    std::function<void()> Hold(const Napi::CallbackInfo & info);
    void Free();

    mtmd_context * ctx_ = nullptr;
    Model * model_ = nullptr;
    Napi::ObjectReference model_ref_;
    int32_t n_embd_ = 0;
    bool mrope_ = false;
    // Workers in flight (tokenize, prepare, encode): dispose waits for none. mtmd_encode_chunk writes the
    // context's one output buffer, so encodes are also refused while one runs.
    int in_flight_ = 0;
    bool encoding_ = false;
};

// One media chunk of a tokenized prompt (an owned copy of mtmd's chunk), handed to
// projector.encode(); positions(pos0) gives its rows' positions in the sequence.
class MediaChunk : public Napi::ObjectWrap<MediaChunk> {
  public:
    static Napi::Function Init(Napi::Env env);
    static Napi::FunctionReference constructor;

    explicit MediaChunk(const Napi::CallbackInfo & info);
    ~MediaChunk() override;
    const mtmd_input_chunk * chunk() const { return chunk_; }

  private:
    Napi::Value Positions(const Napi::CallbackInfo & info);

    mtmd_input_chunk * chunk_ = nullptr;
    bool mrope_ = false;
};

extern std::atomic<int> g_liveProjectors;
