// llama.cpp's chat library (common/chat.h, in the prebuilt libllama-common of the same release):
// a chat template with every family's tool-call syntax (prompt, the grammar that forces a call,
// the parser of the answer). JSON crosses the boundary in OpenAI's shapes, which is what the
// library itself takes, so the binding stays a few calls wide.
#pragma once

#include "common.h"

#include <memory>

struct common_chat_templates;
struct common_chat_parser_params;

// chatTemplates(source, bosToken, eosToken) -> Promise<ChatTemplates>: the template parsed off the JS thread.
Napi::Value CreateChatTemplates(const Napi::CallbackInfo & info);

class ChatTemplates : public Napi::ObjectWrap<ChatTemplates> {
  public:
    static Napi::Function Init(Napi::Env env);
    static Napi::FunctionReference constructor;

    explicit ChatTemplates(const Napi::CallbackInfo & info);

  private:
    // apply(inputsJson) -> Promise<{ params: string (JSON), parser: ChatParser }>.
    Napi::Value Apply(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);

    // Shared with the workers of apply() calls still running, so dispose() never frees under them.
    std::shared_ptr<common_chat_templates> templates_;
};

// How one applied prompt's answer is read: the library's parser for the format it chose.
class ChatParser : public Napi::ObjectWrap<ChatParser> {
  public:
    static Napi::Function Init(Napi::Env env);
    static Napi::FunctionReference constructor;

    explicit ChatParser(const Napi::CallbackInfo & info);

  private:
    // parse(text, isPartial) -> Promise<string (JSON: content, reasoning_content, tool_calls)>.
    Napi::Value Parse(const Napi::CallbackInfo & info);

    std::shared_ptr<const common_chat_parser_params> params_;
};
