// A chat answer as it streams in: reasoning (`message.thinking`) first when the request asked for
// it, then the content, with each tool call out as soon as it is complete (text that may be a
// call is held back meanwhile). Streaming and buffered answers go through the same parser, so
// they read the same. A prompt from llama.cpp's chat library has its answer read by the library's
// parser for the family's syntax instead (library-output.ts).
import type { ToolCall } from "../api/ollama.js";
import type { NativeChatParser } from "../native/index.js";
import { LibraryOutputParser } from "./library-output.js";
import { ThinkingStreamParser } from "./thinking.js";
import { ToolCallStreamParser, type ToolCallFormat } from "./tool-calls.js";

export interface ChatOutput {
  thinking: string;
  content: string;
  /** Calls completed in this piece of the answer. */
  toolCalls: ToolCall[];
}

/**
 * `think`: split off a `<think>` block (`startsInThinking` when the prompt already opened it);
 * `toolFormat`: the request gave tools, parse calls in that format.
 */
export interface ChatOutputOptions {
  think: boolean;
  startsInThinking: boolean;
  toolFormat?: ToolCallFormat;
  /** The prompt came from llama.cpp's chat library: its parser reads the whole answer (the fields above are unused). */
  library?: NativeChatParser;
  /** parallel_tool_calls false: the first call is the answer's only one (the grammar allows one; a free answer may write more). */
  oneToolCall?: boolean;
}

/** Reads an answer piece by piece; the library's parser answers asynchronously (its parses run off the JS thread). */
export interface ChatAnswerParser {
  push(text: string): ChatOutput | Promise<ChatOutput>;
  finish(): ChatOutput | Promise<ChatOutput>;
}

export function chatAnswerParser(options: ChatOutputOptions): ChatAnswerParser {
  const parser = options.library ? new LibraryOutputParser(options.library) : new ChatOutputParser(options);
  return options.oneToolCall ? new FirstToolCallOnly(parser) : parser;
}

/** Passes on the first tool call and drops any later one. */
class FirstToolCallOnly implements ChatAnswerParser {
  private called = false;

  constructor(private readonly parser: ChatAnswerParser) {}

  push(text: string): ChatOutput | Promise<ChatOutput> {
    return this.firstCall(this.parser.push(text));
  }

  finish(): ChatOutput | Promise<ChatOutput> {
    return this.firstCall(this.parser.finish());
  }

  private firstCall(output: ChatOutput | Promise<ChatOutput>): ChatOutput | Promise<ChatOutput> {
    if (output instanceof Promise) return output.then((o) => this.keepFirst(o));
    return this.keepFirst(output);
  }

  private keepFirst(output: ChatOutput): ChatOutput {
    const toolCalls = this.called ? [] : output.toolCalls.slice(0, 1);
    this.called ||= toolCalls.length > 0;
    return { ...output, toolCalls };
  }
}

export class ChatOutputParser implements ChatAnswerParser {
  private readonly thinking: ThinkingStreamParser | undefined;
  private readonly tools: ToolCallStreamParser | undefined;

  constructor(options: ChatOutputOptions) {
    this.thinking = options.think ? new ThinkingStreamParser({ startsInThinking: options.startsInThinking }) : undefined;
    this.tools = options.toolFormat ? new ToolCallStreamParser(options.toolFormat) : undefined;
  }

  push(text: string): ChatOutput {
    const split = this.thinking ? this.thinking.push(text) : { thinking: "", content: text };
    if (!this.tools) return { ...split, toolCalls: [] };
    const { content, toolCalls } = this.tools.push(split.content);
    return { thinking: split.thinking, content, toolCalls };
  }

  finish(): ChatOutput {
    const split = this.thinking ? this.thinking.finish() : { thinking: "", content: "" };
    if (!this.tools) return { ...split, toolCalls: [] };
    const pushed = split.content ? this.tools.push(split.content) : { content: "", toolCalls: [] };
    const parsed = this.tools.finish();
    return { thinking: split.thinking, content: pushed.content + parsed.content, toolCalls: [...pushed.toolCalls, ...parsed.toolCalls] };
  }
}
