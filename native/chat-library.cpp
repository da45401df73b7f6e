// llama.cpp's chat library over the prebuilt libllama-common (see chat-library.h). Its C++ API is
// linked across the prebuilt .so as json_schema_to_grammar already is: both sides compile the
// same release's headers against the system libstdc++ (the prebuilt's GCC 11.4, ours 12.2: the
// same C++11 string ABI and container layouts), and common_json is a pimpl, so no JSON library's
// layout crosses over.
#include "chat-library.h"

#include "chat.h"
#include "log.h"

#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

Napi::FunctionReference ChatTemplates::constructor;
Napi::FunctionReference ChatParser::constructor;

static const char * TriggerType(common_grammar_trigger_type type) {
    switch (type) {
        case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN: return "token";
        case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: return "word";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN: return "pattern";
        case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: return "pattern_full";
    }
    return "word";
}

static common_json StringList(const std::vector<std::string> & items) {
    common_json list = common_json::array();
    for (const auto & item : items) list.push_back(item);
    return list;
}

// What a prompt needs besides its text: the format's grammar (lazy: only after a trigger), the
// tokens the grammar may write as themselves, the extra stops, thinking's tags.
static std::string ParamsJson(const common_chat_params & p) {
    common_json triggers = common_json::array();
    for (const auto & t : p.grammar_triggers) {
        common_json trigger = common_json::object();
        trigger["type"] = TriggerType(t.type);
        trigger["value"] = t.value;
        trigger["token"] = static_cast<int64_t>(t.token);
        triggers.push_back(trigger);
    }
    common_json out = common_json::object();
    out["format"] = common_chat_format_name(p.format);
    out["content_only"] = p.format == COMMON_CHAT_FORMAT_CONTENT_ONLY;
    out["prompt"] = p.prompt;
    out["grammar"] = p.grammar;
    out["grammar_lazy"] = p.grammar_lazy;
    out["grammar_triggers"] = triggers;
    out["preserved_tokens"] = StringList(p.preserved_tokens);
    out["additional_stops"] = StringList(p.additional_stops);
    out["generation_prompt"] = p.generation_prompt;
    out["supports_thinking"] = p.supports_thinking;
    out["thinking_start_tag"] = p.thinking_start_tag;
    out["thinking_end_tags"] = StringList(p.thinking_end_tags);
    return out.dump();
}

// The library's inputs from OpenAI-shaped JSON: messages and tools as common_chat_msgs_parse_oaicompat
// and common_chat_tools_parse_oaicompat take them, tool_choice "auto" | "required" | "none".
static common_chat_templates_inputs Inputs(const std::string & text) {
    const common_json in = common_json::parse(text);
    common_chat_templates_inputs inputs;
    inputs.messages = common_chat_msgs_parse_oaicompat(in.at("messages"));
    if (in.contains("tools")) inputs.tools = common_chat_tools_parse_oaicompat(in.at("tools"));
    inputs.tool_choice = common_chat_tool_choice_parse_oaicompat(in.value("tool_choice", "auto"));
    inputs.parallel_tool_calls = in.value("parallel_tool_calls", false);
    inputs.enable_thinking = in.value("enable_thinking", false);
    inputs.reasoning_format = common_reasoning_format_from_name(in.value("reasoning_format", "none"));
    inputs.add_generation_prompt = in.value("add_generation_prompt", true);
    return inputs;
}

// The parser settings llama-server derives from the same apply (server-common.cpp, server-schema.cpp).
static std::shared_ptr<common_chat_parser_params> ParserParams(const common_chat_params & applied,
                                                               const common_chat_templates_inputs & inputs) {
    auto params = std::make_shared<common_chat_parser_params>(applied);
    params->reasoning_format = inputs.reasoning_format;
    params->parse_tool_calls = !inputs.tools.empty() && inputs.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE;
    if (!applied.parser.empty()) params->parser.load(applied.parser);
    return params;
}

Napi::Value CreateChatTemplates(const Napi::CallbackInfo & info) {
    // The library warns on stderr through its own logger (a template without tool descriptions,
    // an outdated Gemma 4 template...): quiet, as llama.cpp's other logs are, unless VLLAMA_LLAMA_LOG.
    static std::once_flag quiet;
    std::call_once(quiet, [] {
        if (std::getenv("VLLAMA_LLAMA_LOG") == nullptr) common_log_pause(common_log_main());
    });
    std::string source = StringArg(info, 0, "source");
    std::string bos = StringArg(info, 1, "bosToken");
    std::string eos = StringArg(info, 2, "eosToken");
    if (source.empty()) ThrowCoded(info.Env(), "source must not be empty", "ERR_INVALID_ARG");
    auto templates = std::make_shared<common_chat_templates_ptr>();
    return PromiseWorker::Run(
        info.Env(),
        [source, bos, eos, templates] { *templates = common_chat_templates_init(nullptr, source, bos, eos); },
        [templates](Napi::Env env) {
            auto * shared = new std::shared_ptr<common_chat_templates>(templates->release(), common_chat_templates_free);
            return ChatTemplates::constructor.New({Napi::External<std::shared_ptr<common_chat_templates>>::New(env, shared)});
        },
        "ERR_CHAT_TEMPLATE");
}

Napi::Function ChatTemplates::Init(Napi::Env env) {
    Napi::Function fn = DefineClass(env, "ChatTemplates", {
        InstanceMethod("apply", &ChatTemplates::Apply),
        InstanceMethod("dispose", &ChatTemplates::Dispose),
    });
    return KeepConstructor(constructor, fn);
}

ChatTemplates::ChatTemplates(const Napi::CallbackInfo & info) : Napi::ObjectWrap<ChatTemplates>(info) {
    // Constructed only by chatTemplates() with an External holding the parsed templates.
    auto * shared = ExternalArg<std::shared_ptr<common_chat_templates>>(info, 1, "use chatTemplates() to create chat templates");
    templates_ = std::move(*shared);
    delete shared;
}

Napi::Value ChatTemplates::Apply(const Napi::CallbackInfo & info) {
    if (!templates_) ThrowCoded(info.Env(), "chat templates are disposed", "ERR_DISPOSED");
    std::string text = StringArg(info, 0, "inputs");
    struct Job {
        std::string params;
        std::shared_ptr<common_chat_parser_params> parser;
    };
    auto job = std::make_shared<Job>();
    return PromiseWorker::Run(
        info.Env(),
        [templates = templates_, text, job] {
            const common_chat_templates_inputs inputs = Inputs(text);
            const common_chat_params applied = common_chat_templates_apply(templates.get(), inputs);
            job->params = ParamsJson(applied);
            job->parser = ParserParams(applied, inputs);
        },
        [job](Napi::Env env) {
            Napi::Object result = Napi::Object::New(env);
            result.Set("params", Napi::String::New(env, job->params));
            auto * parser = new std::shared_ptr<const common_chat_parser_params>(std::move(job->parser));
            result.Set("parser", ChatParser::constructor.New({Napi::External<std::shared_ptr<const common_chat_parser_params>>::New(env, parser)}));
            return result;
        },
        "ERR_CHAT_TEMPLATE");
}

Napi::Value ChatTemplates::Dispose(const Napi::CallbackInfo & info) {
    templates_.reset();
    return info.Env().Undefined();
}

Napi::Function ChatParser::Init(Napi::Env env) {
    Napi::Function fn = DefineClass(env, "ChatParser", {InstanceMethod("parse", &ChatParser::Parse)});
    return KeepConstructor(constructor, fn);
}

ChatParser::ChatParser(const Napi::CallbackInfo & info) : Napi::ObjectWrap<ChatParser>(info) {
    // Constructed only by ChatTemplates.apply() with an External holding the parser settings.
    auto * shared = ExternalArg<std::shared_ptr<const common_chat_parser_params>>(info, 1, "chat parsers come from ChatTemplates.apply()");
    params_ = std::move(*shared);
    delete shared;
}

static std::string MessageJson(const common_chat_msg & msg) {
    common_json calls = common_json::array();
    for (const auto & call : msg.tool_calls) {
        common_json c = common_json::object();
        c["name"] = call.name;
        c["arguments"] = call.arguments;
        c["id"] = call.id;
        calls.push_back(c);
    }
    common_json out = common_json::object();
    out["content"] = msg.content;
    out["reasoning_content"] = msg.reasoning_content;
    out["tool_calls"] = calls;
    return out.dump();
}

Napi::Value ChatParser::Parse(const Napi::CallbackInfo & info) {
    std::string text = StringArg(info, 0, "text");
    if (info.Length() < 2 || !info[1].IsBoolean()) ThrowCoded(info.Env(), "isPartial must be a boolean", "ERR_INVALID_ARG");
    const bool partial = info[1].As<Napi::Boolean>().Value();
    auto out = std::make_shared<std::string>();
    return PromiseWorker::Run(
        info.Env(),
        [params = params_, text, partial, out] { *out = MessageJson(common_chat_parse(text, partial, *params)); },
        [out](Napi::Env env) { return Napi::String::New(env, *out); },
        "ERR_CHAT_PARSE");
}
