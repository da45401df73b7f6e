#include "projector.h"

#include "model.h"
#include "mtmd-helper.h"
#include "stb/stb_image.h"
#include "src/webp/decode.h"

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

Napi::FunctionReference Projector::constructor;
Napi::FunctionReference MediaChunk::constructor;
std::atomic<int> g_liveProjectors{0};

std::vector<ggml_backend_dev_t> & ModelDevices();

Napi::Function Projector::Init(Napi::Env env) {
    Napi::Function fn = DefineClass(env, "Projector", {
        InstanceMethod("tokenize", &Projector::Tokenize),
        InstanceMethod("prepare", &Projector::Prepare),
        InstanceMethod("encode", &Projector::Encode),
        InstanceMethod("dispose", &Projector::Dispose),
    });
    return KeepConstructor(constructor, fn);
}

struct ProjectorLoadJob {
    std::string path;
    llama_model * model = nullptr;
    mtmd_context_params params = mtmd_context_params_default();
    mtmd_context * ctx = nullptr;
};

// model.loadProjector(path, { threads }) -> Promise<Projector>. The projector runs on the model's
// GPU when the model has one (mtmd picks its best device), else on the CPU.
Napi::Value Projector::Load(const Napi::CallbackInfo & info, Model * model) {
    Napi::Env env = info.Env();
    auto job = std::make_shared<ProjectorLoadJob>();
    job->path = StringArg(info, 0, "path");
    Napi::Object o = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    job->model = model->Get(env);
    auto & p = job->params;
    p.use_gpu = !ModelDevices().empty();
    p.n_threads = std::max(1, OptionalNumber<int32_t>(o, "threads", static_cast<int32_t>(std::thread::hardware_concurrency())));
    p.print_timings = false;
    // The warm-up encode of a full-size blank image costs seconds on a CPU for no result.
    p.warmup = false;
    auto model_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
    return PromiseWorker::Run(env,
        [job]() {
            TakeLastLlamaError();
            job->ctx = mtmd_init_from_file(job->path.c_str(), job->model, job->params);
            if (job->ctx == nullptr) {
                std::string reason = TakeLastLlamaError();
                throw std::runtime_error("failed to load projector '" + job->path + "'" + (reason.empty() ? "" : ": " + reason));
            }
        },
        [job, model_ref](Napi::Env env) -> Napi::Value {
            return constructor.New({Napi::External<mtmd_context>::New(env, job->ctx), model_ref->Value()});
        },
        "ERR_MODEL_LOAD");
}

Projector::Projector(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Projector>(info) {
    ctx_ = ExternalArg<mtmd_context>(info, 2, "Projector cannot be constructed directly; use model.loadProjector()");
    Napi::Object model = ObjectArg(info, 1, "model");
    model_ref_ = Napi::Persistent(model);
    model_ = Model::Unwrap(model);
    // The projector computes with the model's weights (its embedding width, some its tokens):
    // the model stays until the projector goes, as it does for its contexts.
    model_->live_contexts++;
    n_embd_ = llama_model_n_embd_inp(model_->Get(info.Env()));
    mrope_ = mtmd_decode_use_mrope(ctx_);
    g_liveProjectors++;
    Napi::Object self = info.This().As<Napi::Object>();
    self.Set("vision", mtmd_support_vision(ctx_));
    self.Set("audio", mtmd_support_audio(ctx_));
    self.Set("mrope", mrope_);
    self.Set("marker", std::string(mtmd_get_marker(ctx_)));
    self.Set("embeddingLength", n_embd_);
}

Projector::~Projector() { Free(); }

void Projector::Free() {
    if (ctx_ == nullptr) return;
    mtmd_free(ctx_);
    ctx_ = nullptr;
    model_->live_contexts--;
    model_ref_.Reset();
    g_liveProjectors--;
}

mtmd_context * Projector::Live(Napi::Env env) const {
    if (ctx_ == nullptr) ThrowCoded(env, "projector is disposed", "ERR_DISPOSED");
    return ctx_;
}

std::function<void()> Projector::Hold(const Napi::CallbackInfo & info) {
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
    in_flight_++;
    return [this, self]() {
        in_flight_--;
        self->Reset();
    };
}

// Media already prepared (projector.prepare()), given to tokenize in place of its file: its id
// and size, no pixels. mtmd counts a placeholder's tokens as it counts the file's.
struct Placeholder {
    std::string id;
    uint32_t nx = 0, ny = 0;
    bool audio = false;
};

// One media item of a prompt, copied out of JS memory for the worker thread: a file, or a placeholder.
struct MediaItem {
    std::vector<unsigned char> file;
    std::unique_ptr<Placeholder> placeholder;
};

// A prompt's chunks, made on the worker thread.
struct ChunkList {
    std::unique_ptr<mtmd_input_chunks, mtmd::mtmd_input_chunks_deleter> chunks;
    std::vector<bool> non_causal;
    // Each media chunk's own copy (null for text), made on the worker thread: a copy holds the
    // preprocessed pixels (600 KB for a 224 x 224 image). 32 tokenizes of a 336 x 336 PNG held
    // the JS thread 34-60 ms with the copies made there, 12-22 ms without (2026-12-02, 2 cores).
    std::vector<mtmd::input_chunk_ptr> media_copies;
};

struct TokenizeJob {
    mtmd_context * ctx = nullptr;
    std::string text;
    std::vector<MediaItem> media;
    bool add_special = false, parse_special = false;
    double max_pixels = 0;
    ChunkList out;
};

struct PrepareJob {
    mtmd_context * ctx = nullptr;
    std::vector<unsigned char> file;
    // Who the errors name: "image 2".
    std::string name;
    double max_pixels = 0;
    mtmd::bitmap bitmap;
    ChunkList out;
};

// stb_image decodes into width x height x 3 bytes whatever the file's size: a small PNG can
// claim 65,535 x 65,535 pixels (12 GiB). The header is read first and such an image refused.
static void CheckPixels(const std::string & name, double max_pixels, int width, int height) {
    if (static_cast<double>(width) * height <= max_pixels) return;
    throw std::runtime_error(name + " is " + std::to_string(width) + "x" + std::to_string(height) +
                             " pixels, more than the limit of " + std::to_string(static_cast<int64_t>(max_pixels)));
}

static bool IsWebp(const std::vector<unsigned char> & m) {
    return m.size() >= 12 && std::memcmp(m.data(), "RIFF", 4) == 0 && std::memcmp(m.data() + 8, "WEBP", 4) == 0;
}

// stb_image reads no WebP (llama.cpp decodes it only through ffmpeg): libwebp's decoder
// (native/vendor/libwebp) writes its pixels as a binary PPM, which stb_image reads, so a WebP's
// bitmap and id (the SHA-256 of the PPM) come from the same helper as every other format's.
static std::vector<unsigned char> WebpAsPpm(const std::vector<unsigned char> & m, const std::string & name, double max_pixels) {
    WebPBitstreamFeatures features;
    if (WebPGetFeatures(m.data(), m.size(), &features) != VP8_STATUS_OK) {
        throw std::runtime_error(name + " cannot be decoded (a damaged WebP file)");
    }
    if (features.has_animation) throw std::runtime_error(name + " is an animated WebP, which is not supported");
    CheckPixels(name, max_pixels, features.width, features.height);
    const std::string header = "P6\n" + std::to_string(features.width) + " " + std::to_string(features.height) + "\n255\n";
    const size_t stride = static_cast<size_t>(features.width) * 3;
    std::vector<unsigned char> ppm(header.begin(), header.end());
    ppm.resize(header.size() + stride * features.height);
    if (WebPDecodeRGBInto(m.data(), m.size(), ppm.data() + header.size(), ppm.size() - header.size(), static_cast<int>(stride)) == nullptr) {
        throw std::runtime_error(name + " cannot be decoded (a damaged WebP file)");
    }
    return ppm;
}

static mtmd_bitmap * DecodeFile(mtmd_context * ctx, const std::vector<unsigned char> & file, const std::string & name, double max_pixels) {
    std::vector<unsigned char> converted;
    if (IsWebp(file)) converted = WebpAsPpm(file, name, max_pixels);
    const std::vector<unsigned char> & m = converted.empty() ? file : converted;
    int width = 0, height = 0, channels = 0;
    if (stbi_info_from_memory(m.data(), static_cast<int>(m.size()), &width, &height, &channels)) CheckPixels(name, max_pixels, width, height);
    mtmd_bitmap * bitmap = mtmd_helper_bitmap_init_from_buf(ctx, m.data(), m.size(), false, mtmd_helper_init_opt_default()).bitmap;
    if (bitmap == nullptr) throw std::runtime_error(name + " cannot be decoded (" + TakeLastLlamaError() + ")");
    return bitmap;
}

static mtmd_bitmap * PlaceholderBitmap(const Placeholder & p) {
    mtmd_bitmap * bitmap = p.audio ? mtmd_bitmap_init_from_audio(p.nx, nullptr) : mtmd_bitmap_init(p.nx, p.ny, nullptr);
    mtmd_bitmap_set_id(bitmap, p.id.c_str());
    return bitmap;
}

static void RunMtmdTokenize(mtmd_context * ctx, const std::string & text, bool add_special, bool parse_special,
                            const std::vector<const mtmd_bitmap *> & bitmaps, ChunkList & out) {
    out.chunks.reset(mtmd_input_chunks_init());
    mtmd_input_text input{text.c_str(), text.size(), add_special, parse_special};
    if (mtmd_tokenize(ctx, out.chunks.get(), &input, bitmaps.data(), bitmaps.size()) != 0) {
        throw std::runtime_error("the prompt's media cannot be tokenized: " + TakeLastLlamaError());
    }
    for (size_t i = 0; i < mtmd_input_chunks_size(out.chunks.get()); i++) {
        const mtmd_input_chunk * chunk = mtmd_input_chunks_get(out.chunks.get(), i);
        out.non_causal.push_back(mtmd_decode_use_non_causal(ctx, chunk));
        const bool is_text = mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_TEXT;
        out.media_copies.emplace_back(is_text ? nullptr : mtmd_input_chunk_copy(chunk));
    }
}

static void RunTokenize(TokenizeJob & job) {
    TakeLastLlamaError();
    std::vector<mtmd::bitmap> bitmaps;
    std::vector<const mtmd_bitmap *> pointers;
    for (size_t i = 0; i < job.media.size(); i++) {
        const MediaItem & item = job.media[i];
        bitmaps.emplace_back(item.placeholder ? PlaceholderBitmap(*item.placeholder)
                                              : DecodeFile(job.ctx, item.file, "image " + std::to_string(i + 1), job.max_pixels));
        pointers.push_back(bitmaps.back().ptr.get());
    }
    RunMtmdTokenize(job.ctx, job.text, job.add_special, job.parse_special, pointers, job.out);
}

// A file alone at a marker: the chunks it becomes wherever a prompt holds it (mtmd's text around
// it, such as an image's begin and end tokens, is the prompt's).
static void RunPrepare(PrepareJob & job) {
    TakeLastLlamaError();
    job.bitmap.ptr.reset(DecodeFile(job.ctx, job.file, job.name, job.max_pixels));
    RunMtmdTokenize(job.ctx, mtmd_get_marker(job.ctx), false, true, {job.bitmap.ptr.get()}, job.out);
}

/** A chunk as JS sees it; a media chunk's object takes over `copy` (the chunk's own copy). */
static Napi::Object ChunkObject(Napi::Env env, const mtmd_input_chunk * chunk, mtmd::input_chunk_ptr copy, bool non_causal, bool mrope) {
    const auto type = mtmd_input_chunk_get_type(chunk);
    if (type == MTMD_INPUT_CHUNK_TYPE_TEXT) {
        size_t n = 0;
        const llama_token * tokens = mtmd_input_chunk_get_tokens_text(chunk, &n);
        Napi::Int32Array a = Napi::Int32Array::New(env, n);
        std::copy(tokens, tokens + n, a.Data());
        Napi::Object o = Napi::Object::New(env);
        o.Set("type", "text");
        o.Set("tokens", a);
        return o;
    }
    Napi::Object o = MediaChunk::constructor.New({Napi::External<mtmd_input_chunk>::New(env, copy.release()),
                                                  Napi::Boolean::New(env, mrope)});
    o.Set("type", type == MTMD_INPUT_CHUNK_TYPE_IMAGE ? "image" : "audio");
    o.Set("nTokens", static_cast<double>(mtmd_input_chunk_get_n_tokens(chunk)));
    o.Set("nPos", static_cast<double>(mtmd_input_chunk_get_n_pos(chunk)));
    const char * id = mtmd_input_chunk_get_id(chunk);
    o.Set("id", id ? std::string(id) : std::string());
    o.Set("nonCausal", non_causal);
    return o;
}

/** Every chunk of `list`, or its media chunks only. */
static Napi::Array ChunkArray(Napi::Env env, ChunkList & list, bool mrope, bool media_only) {
    Napi::Array out = Napi::Array::New(env);
    for (size_t i = 0; i < mtmd_input_chunks_size(list.chunks.get()); i++) {
        const mtmd_input_chunk * chunk = mtmd_input_chunks_get(list.chunks.get(), i);
        if (media_only && mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_TEXT) continue;
        out.Set(out.Length(), ChunkObject(env, chunk, std::move(list.media_copies[i]), list.non_causal[i], mrope));
    }
    return out;
}

static Placeholder PlaceholderArg(Napi::Env env, Napi::Object o) {
    Placeholder p;
    Napi::Value id = o.Get("id"), width = o.Get("width"), height = o.Get("height");
    const auto dimension = [](const Napi::Value & v) {
        return v.IsNumber() && v.As<Napi::Number>().DoubleValue() >= 1 && v.As<Napi::Number>().DoubleValue() <= UINT32_MAX &&
               v.As<Napi::Number>().DoubleValue() == static_cast<double>(v.As<Napi::Number>().Uint32Value());
    };
    if (!id.IsString() || id.As<Napi::String>().Utf8Value().empty() || !dimension(width) || !dimension(height)) {
        ThrowCoded(env, "a media placeholder must be { id, width, height, audio } of projector.prepare()", "ERR_INVALID_ARG");
    }
    p.id = id.As<Napi::String>().Utf8Value();
    p.nx = width.As<Napi::Number>().Uint32Value();
    p.ny = height.As<Napi::Number>().Uint32Value();
    p.audio = o.Get("audio").ToBoolean();
    // mtmd asserts (aborts) on an audio placeholder of another height: a clip is one row of samples.
    if (p.audio && p.ny != 1) ThrowCoded(env, "an audio placeholder's height must be 1", "ERR_INVALID_ARG");
    return p;
}

// tokenize(text, media: (Uint8Array | { id, width, height, audio })[], { addSpecial, parseSpecial, maxPixels })
// -> Promise<chunks>: each of `media` (an encoded image or audio file, or a placeholder of one
// that projector.prepare() read) replaces one marker of `text`, in order. A placeholder's chunks
// have no pixels: they count and key like the file's, and cannot be encoded.
Napi::Value Projector::Tokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto job = std::make_shared<TokenizeJob>();
    job->ctx = Live(env);
    job->text = StringArg(info, 0, "text");
    const char * media_error = "media must be an array of Uint8Array or placeholders of projector.prepare()";
    if (info.Length() < 2 || !info[1].IsArray()) ThrowCoded(env, media_error, "ERR_INVALID_ARG");
    Napi::Array media = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < media.Length(); i++) {
        Napi::Value v = media.Get(i);
        MediaItem item;
        if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
            Napi::Uint8Array bytes = v.As<Napi::Uint8Array>();
            item.file.assign(bytes.Data(), bytes.Data() + bytes.ElementLength());
        } else if (v.IsObject() && !v.IsArray()) {
            item.placeholder = std::make_unique<Placeholder>(PlaceholderArg(env, v.As<Napi::Object>()));
        } else {
            ThrowCoded(env, media_error, "ERR_INVALID_ARG");
        }
        job->media.push_back(std::move(item));
    }
    Napi::Object o = info.Length() > 2 && info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);
    job->add_special = OptionalBool(o, "addSpecial", false);
    job->parse_special = OptionalBool(o, "parseSpecial", true);
    job->max_pixels = OptionalNumber<double>(o, "maxPixels", 1 << 26);
    const bool mrope = mrope_;
    return PromiseWorker::Run(env,
        [job]() { RunTokenize(*job); },
        [job, mrope](Napi::Env env) -> Napi::Value { return ChunkArray(env, job->out, mrope, false); },
        "ERR_MEDIA", Hold(info));
}

// prepare(file: Uint8Array, { maxPixels, name }) -> Promise<{ id, width, height, audio, chunks }>:
// the file decoded and preprocessed once, as the media chunks it becomes at a marker; tokenize()
// then takes { id, width, height, audio } in its place, and its placeholder chunks stand for these.
// Errors name the file `name` ("media" by default).
Napi::Value Projector::Prepare(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto job = std::make_shared<PrepareJob>();
    job->ctx = Live(env);
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        ThrowCoded(env, "file must be a Uint8Array", "ERR_INVALID_ARG");
    }
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    job->file.assign(bytes.Data(), bytes.Data() + bytes.ElementLength());
    Napi::Object o = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    job->name = OptionalString(o, "name", "media");
    job->max_pixels = OptionalNumber<double>(o, "maxPixels", 1 << 26);
    const bool mrope = mrope_;
    return PromiseWorker::Run(env,
        [job]() { RunPrepare(*job); },
        [job, mrope](Napi::Env env) -> Napi::Value {
            const mtmd_bitmap * bitmap = job->bitmap.ptr.get();
            Napi::Object out = Napi::Object::New(env);
            out.Set("id", std::string(mtmd_bitmap_get_id(bitmap)));
            out.Set("width", mtmd_bitmap_get_nx(bitmap));
            out.Set("height", mtmd_bitmap_get_ny(bitmap));
            out.Set("audio", mtmd_bitmap_is_audio(bitmap));
            out.Set("chunks", ChunkArray(env, job->out, mrope, true));
            return out;
        },
        "ERR_MEDIA", Hold(info));
}

// encode(chunk: MediaChunk) -> Promise<Float32Array>: the chunk's nTokens embedding rows,
// embeddingLength floats each, computed by the projector off the JS thread.
Napi::Value Projector::Encode(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    mtmd_context * ctx = Live(env);
    if (info.Length() < 1 || !info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(MediaChunk::constructor.Value())) {
        ThrowCoded(env, "chunk must be a media chunk of projector.tokenize()", "ERR_INVALID_ARG");
    }
    if (encoding_) ThrowCoded(env, "projector is busy with an encode", "ERR_BUSY");
    auto chunk_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info[0].As<Napi::Object>()));
    const mtmd_input_chunk * chunk = MediaChunk::Unwrap(info[0].As<Napi::Object>())->chunk();
    auto rows = std::make_shared<std::vector<float>>();
    const size_t width = static_cast<size_t>(n_embd_);
    encoding_ = true;
    auto hold = Hold(info);
    return PromiseWorker::Run(env,
        [ctx, chunk, rows, width]() {
            TakeLastLlamaError();
            if (mtmd_encode_chunk(ctx, chunk) != 0) throw std::runtime_error("media encode failed: " + TakeLastLlamaError());
            const float * embd = mtmd_get_output_embd(ctx);
            rows->assign(embd, embd + width * mtmd_input_chunk_get_n_tokens(chunk));
        },
        [rows](Napi::Env env) -> Napi::Value {
            Napi::Float32Array a = Napi::Float32Array::New(env, rows->size());
            std::copy(rows->begin(), rows->end(), a.Data());
            return a;
        },
        "ERR_ENCODE",
        [this, hold, chunk_ref]() {
            encoding_ = false;
            chunk_ref->Reset();
            hold();
        });
}

Napi::Value Projector::Dispose(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (in_flight_ > 0) ThrowCoded(env, "projector is busy", "ERR_BUSY");
    Free();
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
}

Napi::Function MediaChunk::Init(Napi::Env env) {
    Napi::Function fn = DefineClass(env, "MediaChunk", {
        InstanceMethod("positions", &MediaChunk::Positions),
    });
    return KeepConstructor(constructor, fn);
}

MediaChunk::MediaChunk(const Napi::CallbackInfo & info) : Napi::ObjectWrap<MediaChunk>(info) {
    chunk_ = ExternalArg<mtmd_input_chunk>(info, 2, "MediaChunk cannot be constructed directly; use projector.tokenize()");
    mrope_ = info[1].ToBoolean();
}

MediaChunk::~MediaChunk() { mtmd_input_chunk_free(chunk_); }

// positions(pos0) -> Int32Array: the positions of the chunk's rows when it starts at pos0, as
// llama_batch takes them: nTokens of them, or with M-RoPE 4 x nTokens (dimension-major: t, y, x, z).
Napi::Value MediaChunk::Positions(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const llama_pos pos0 = static_cast<llama_pos>(NumberArg(info, 0, "pos0"));
    const size_t n = mtmd_input_chunk_get_n_tokens(chunk_);
    if (!mrope_) {
        Napi::Int32Array out = Napi::Int32Array::New(env, n);
        for (size_t i = 0; i < n; i++) out[i] = pos0 + static_cast<llama_pos>(i);
        return out;
    }
    Napi::Int32Array out = Napi::Int32Array::New(env, 4 * n);
    const mtmd_image_tokens * image = mtmd_input_chunk_get_tokens_image(chunk_);
    std::vector<mtmd_decoder_pos> rel(n);
    if (image != nullptr) {
        mtmd_helper_image_get_decoder_pos(image, pos0, rel.data());
    } else {
        for (size_t i = 0; i < n; i++) rel[i] = {static_cast<uint32_t>(pos0 + i), static_cast<uint32_t>(pos0 + i), static_cast<uint32_t>(pos0 + i), static_cast<uint32_t>(pos0 + i)};
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = rel[i].t;
        out[i + n] = rel[i].y;
        out[i + 2 * n] = rel[i].x;
        out[i + 3 * n] = rel[i].z;
    }
    return out;
}
