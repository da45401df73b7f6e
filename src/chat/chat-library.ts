// llama.cpp's chat library (common/chat.h, bound by native/chat-library.cpp) for a GGUF's Jinja
// template: the prompt and the parser of the answer for every model family's tool-call syntax,
// exactly as llama-server renders and parses them, and the grammar that forces the family's call
// syntax (tool-call-grammar.ts). The project's own renderer and parser (template.ts, tool-calls.ts)
// stay for Ollama's Go templates and templates the library only knows as plain content.
import { BadRequestError } from "../api/errors.js";
import type { ChatMessage } from "../api/ollama.js";
import type { Tool } from "../api/shared-fields.js";
import { chatTemplates, toTypedError, type NativeChatParser, type NativeChatTemplates } from "../native/index.js";

/** What common_chat_templates_apply returns besides the parser (native/chat-library.cpp, ParamsJson). */
export interface ChatLibraryParams {
  /** The library's name of the format it chose ("Content-only", "peg-native", ...). */
  format: string;
  /** The template taught no syntax the library recognises: the answer is plain content. */
  content_only: boolean;
  prompt: string;
  /** GBNF of the answer's tool calls; "" when nothing is constrained. */
  grammar: string;
  /** The grammar applies only once a trigger appeared (tool_choice auto); otherwise from the first token. */
  grammar_lazy: boolean;
  grammar_triggers: Array<{ type: "token" | "word" | "pattern" | "pattern_full"; value: string; token: number }>;
  preserved_tokens: string[];
  additional_stops: string[];
  generation_prompt: string;
  supports_thinking: boolean;
  thinking_start_tag: string;
  thinking_end_tags: string[];
}

export interface ChatLibraryRequest {
  messages: ChatMessage[];
  tools: Tool[];
  /** Whether the template should think (enable_thinking). */
  enableThinking: boolean;
  /** "deepseek" (the default, llama-server's): reasoning is split off the answer; "none": it stays content. */
  reasoningFormat?: "deepseek" | "none";
  /** "required": the grammar is the library's forced call (not lazy); "auto" (the default): lazy, after a trigger. */
  toolChoice?: "auto" | "required";
  /** false: the grammar's calls hold one function call each (tool-call-grammar.ts narrows to one); OpenAI's default is true. */
  parallelToolCalls?: boolean;
}

export interface ChatLibraryPrompt {
  params: ChatLibraryParams;
  parser: NativeChatParser;
}

/** One GGUF template in llama.cpp's chat library. */
export class ChatLibrary {
  private constructor(private readonly templates: NativeChatTemplates) {}

  /**
   * The library over a template, parsed once per (source, BOS, EOS); undefined when the library
   * cannot parse it (the project's own renderer then serves it, as before the library).
   */
  static cached(source: string, bosToken: string, eosToken: string): Promise<ChatLibrary | undefined> {
    const key = JSON.stringify([source, bosToken, eosToken]);
    let library = libraries.get(key);
    if (library) {
      libraries.delete(key); // re-inserted below: the Map's order is the recency order
    } else {
      library = chatTemplates(source, bosToken, eosToken).then((t) => new ChatLibrary(t), () => undefined);
    }
    libraries.set(key, library);
    if (libraries.size > MAX_CACHED_LIBRARIES) {
      const [oldestKey, oldest] = libraries.entries().next().value!;
      libraries.delete(oldestKey);
      void oldest.then((l) => l?.templates.dispose());
    }
    return library;
  }

  /** The prompt and its answer's parser; a template that throws or inputs the library refuses are a 400. */
  async apply(req: ChatLibraryRequest): Promise<ChatLibraryPrompt> {
    const inputs = {
      messages: openAiMessages(req.messages),
      tools: req.tools,
      tool_choice: req.toolChoice ?? "auto",
      parallel_tool_calls: req.parallelToolCalls ?? true,
      enable_thinking: req.enableThinking,
      reasoning_format: req.reasoningFormat ?? "deepseek",
      add_generation_prompt: true,
    };
    try {
      const { params, parser } = await this.templates.apply(JSON.stringify(inputs));
      return { params: JSON.parse(params) as ChatLibraryParams, parser };
    } catch (error) {
      const typed = toTypedError(error);
      throw typed instanceof BadRequestError ? new BadRequestError(`chat template: ${typed.message}`) : typed;
    }
  }
}

const MAX_CACHED_LIBRARIES = 32;
const libraries = new Map<string, Promise<ChatLibrary | undefined>>();

/**
 * Ollama's messages in OpenAI's shape, as the library takes them. Ollama's carry no call ids:
 * each call gets one in order (nine digits, the form Mistral's templates insist on) and each
 * tool result the id of the earliest call not yet answered.
 */
export function openAiMessages(messages: readonly ChatMessage[]): unknown[] {
  let issued = 0;
  const unanswered: string[] = [];
  return messages.map((m) => {
    if (m.role === "tool") {
      return { role: "tool", content: m.content, tool_call_id: unanswered.shift() ?? "", ...(m.tool_name ? { name: m.tool_name } : {}) };
    }
    if (m.role !== "assistant") return { role: m.role, content: m.content };
    const calls = (m.tool_calls ?? []).map((c) => {
      const id = String(++issued).padStart(9, "0");
      unanswered.push(id);
      return { type: "function", id, function: { name: c.function.name, arguments: JSON.stringify(c.function.arguments) } };
    });
    return {
      role: "assistant", content: m.content,
      ...(m.thinking ? { reasoning_content: m.thinking } : {}),
      ...(calls.length ? { tool_calls: calls } : {}),
    };
  });
}
