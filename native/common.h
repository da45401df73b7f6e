// Shared plumbing for the binding: promise-returning workers, argument checks, llama.cpp log capture.
#pragma once

#include <napi.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// An error thrown on a worker thread whose code differs from its call's (a lost RPC worker during a step).
class CodedError : public std::runtime_error {
  public:
    CodedError(const std::string & message, const char * code) : std::runtime_error(message), code(code) {}
    const char * code;
};

// Runs `execute` on a libuv worker thread and settles a promise on the JS thread with
// `resolve(env)`. Any exception thrown by `execute` rejects the promise with its message, and
// with the call's code unless it is a CodedError.
class PromiseWorker : public Napi::AsyncWorker {
  public:
    using Job = std::function<void()>;
    using Resolve = std::function<Napi::Value(Napi::Env)>;
    using Settle = std::function<void()>;

    // `settle` runs on the JS thread before the promise settles, whatever the outcome.
    static Napi::Promise Run(Napi::Env env, Job execute, Resolve resolve, const char * code = "ERR_NATIVE",
                             Settle settle = nullptr) {
        auto * worker = new PromiseWorker(env, std::move(execute), std::move(resolve), code, std::move(settle));
        auto promise = worker->deferred_.Promise();
        worker->Napi::AsyncWorker::Queue();
        return promise;
    }

  protected:
    void Execute() override {
        try {
            execute_();
        } catch (const CodedError & e) {
            code_ = e.code;
            SetError(e.what());
        } catch (const std::exception & e) {
            SetError(e.what());
        }
    }
    void OnOK() override {
        Napi::HandleScope scope(Env());
        if (settle_) settle_();
        try {
            deferred_.Resolve(resolve_(Env()));
        } catch (const Napi::Error & e) {
            deferred_.Reject(e.Value());
        }
    }
    void OnError(const Napi::Error & error) override {
        if (settle_) settle_();
        Napi::Error e = Napi::Error::New(Env(), error.Message());
        e.Set("code", Napi::String::New(Env(), code_));
        deferred_.Reject(e.Value());
    }

  private:
    PromiseWorker(Napi::Env env, Job execute, Resolve resolve, const char * code, Settle settle)
        : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)),
          execute_(std::move(execute)), resolve_(std::move(resolve)), settle_(std::move(settle)), code_(code) {}

    Napi::Promise::Deferred deferred_;
    Job execute_;
    Resolve resolve_;
    Settle settle_;
    const char * code_;
};

// Keeps a wrapped class's constructor for the binding's own use (wrappers are made natively,
// never by JS) for the life of the addon, and returns the class.
inline Napi::Function KeepConstructor(Napi::FunctionReference & constructor, Napi::Function fn) {
    constructor = Napi::Persistent(fn);
    constructor.SuppressDestruct();
    return fn;
}

// A JS Error with a `code` property the TypeScript layer maps to typed errors.
[[noreturn]] inline void ThrowCoded(Napi::Env env, const std::string & message, const char * code) {
    Napi::Error e = Napi::Error::New(env, message);
    e.Set("code", Napi::String::New(env, code));
    throw e;
}

// What a wrapper is made from: only the binding constructs wrappers, passing an External of the
// native object first (`arity` arguments in all); `how` tells a JS caller where they come from.
template <typename T>
T * ExternalArg(const Napi::CallbackInfo & info, size_t arity, const char * how) {
    if (info.Length() != arity || !info[0].IsExternal()) ThrowCoded(info.Env(), how, "ERR_INVALID_ARG");
    return info[0].As<Napi::External<T>>().Data();
}

inline double NumberArg(const Napi::CallbackInfo & info, size_t i, const char * name) {
    if (info.Length() <= i || !info[i].IsNumber()) {
        ThrowCoded(info.Env(), std::string(name) + " must be a number", "ERR_INVALID_ARG");
    }
    return info[i].As<Napi::Number>().DoubleValue();
}

inline std::string StringArg(const Napi::CallbackInfo & info, size_t i, const char * name) {
    if (info.Length() <= i || !info[i].IsString()) {
        ThrowCoded(info.Env(), std::string(name) + " must be a string", "ERR_INVALID_ARG");
    }
    return info[i].As<Napi::String>().Utf8Value();
}

inline Napi::Object ObjectArg(const Napi::CallbackInfo & info, size_t i, const char * name) {
    if (info.Length() <= i || !info[i].IsObject()) {
        ThrowCoded(info.Env(), std::string(name) + " must be an object", "ERR_INVALID_ARG");
    }
    return info[i].As<Napi::Object>();
}

// One of a fixed set of option names to its value; any other name is an ERR_INVALID_ARG that
// lists the names `what` takes.
template <typename T>
T NamedChoice(Napi::Env env, const char * what, const std::string & name,
              std::initializer_list<std::pair<const char *, T>> choices) {
    std::string names;
    for (const auto & [key, value] : choices) {
        if (name == key) return value;
        names += (names.empty() ? "" : ", ") + std::string(key);
    }
    ThrowCoded(env, "unsupported " + std::string(what) + " '" + name + "' (" + names + ")", "ERR_INVALID_ARG");
}

template <typename T>
Napi::TypedArrayOf<T> ToTypedArray(Napi::Env env, const std::vector<T> & values) {
    auto out = Napi::TypedArrayOf<T>::New(env, values.size());
    std::copy(values.begin(), values.end(), out.Data());
    return out;
}

// llama.cpp's calls that fill a caller's buffer (tokenize, detokenize) return the size they
// need, negated, when the buffer is too small: grow it once and call again.
template <typename Buffer, typename Fill>
int32_t FillGrowing(Buffer & buffer, Fill fill) {
    int32_t n = fill(buffer);
    if (n < 0) {
        buffer.resize(-n);
        n = fill(buffer);
    }
    return n;
}

template <typename T>
T OptionalNumber(const Napi::Object & o, const char * key, T fallback) {
    Napi::Value v = o.Get(key);
    return v.IsNumber() ? static_cast<T>(v.As<Napi::Number>().DoubleValue()) : fallback;
}

inline bool OptionalBool(const Napi::Object & o, const char * key, bool fallback) {
    Napi::Value v = o.Get(key);
    return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : fallback;
}

inline std::string OptionalString(const Napi::Object & o, const char * key, const std::string & fallback) {
    Napi::Value v = o.Get(key);
    return v.IsString() ? v.As<Napi::String>().Utf8Value() : fallback;
}

// llama.cpp reports why a load failed only through its log: keep the first error line since the
// last Take (loads and context creation run one at a time per call site).
void InstallLogCapture();
std::string TakeLastLlamaError();

// The weights' buffers of the model this thread loads, MiB per buffer type, as llama.cpp logs
// them ("CPU_REPACK model buffer size = 0.10 MiB"; no API tells), summed per type (a split GGUF
// maps one buffer per file): while `out` is set, the log lines of this thread land in it.
// CPU_REPACK holds weights repacked for the CPU backend's own products (native/patches: Q8_0
// with VNNI), the others mapped or copied as stored.
void CaptureWeightBuffers(std::map<std::string, double> * out);

// Counts of live native objects, for leak tests.
extern std::atomic<int> g_liveModels;
extern std::atomic<int> g_liveContexts;
