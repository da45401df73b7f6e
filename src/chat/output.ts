// A chat answer as it streams in: reasoning (`message.thinking`) first when the request asked for
// it, then the content, with tool calls held back and parsed when generation ends. Streaming and
// buffered answers go through the same parser, so they read the same.
import type { ToolCall } from "../api/ollama.js";
import { ThinkingStreamParser } from "./thinking.js";
import { ToolCallStreamParser, type ToolCallFormat } from "./tool-calls.js";

export interface ChatOutput {
  thinking: string;
  content: string;
}

/**
 * `think`: split off a `<think>` block (`startsInThinking` when the prompt already opened it);
 * `toolFormat`: the request gave tools, parse calls in that format.
 */
export interface ChatOutputOptions {
  think: boolean;
  startsInThinking: boolean;
  toolFormat?: ToolCallFormat;
}

export class ChatOutputParser {
  private readonly thinking: ThinkingStreamParser | undefined;
  private readonly tools: ToolCallStreamParser | undefined;

  constructor(options: ChatOutputOptions) {
    this.thinking = options.think ? new ThinkingStreamParser({ startsInThinking: options.startsInThinking }) : undefined;
    this.tools = options.toolFormat ? new ToolCallStreamParser(options.toolFormat) : undefined;
  }

  push(text: string): ChatOutput {
    const split = this.thinking ? this.thinking.push(text) : { thinking: "", content: text };
    return { thinking: split.thinking, content: this.tools ? this.tools.push(split.content) : split.content };
  }

  finish(): ChatOutput & { toolCalls: ToolCall[] } {
    const split = this.thinking ? this.thinking.finish() : { thinking: "", content: "" };
    if (!this.tools) return { ...split, toolCalls: [] };
    const content = split.content ? this.tools.push(split.content) : "";
    const parsed = this.tools.finish();
    return { thinking: split.thinking, content: content + parsed.content, toolCalls: parsed.toolCalls };
  }
}
