// An answer read by llama.cpp's chat library (chat-library.ts) as it streams in: each piece
// re-parses the whole answer so far as a partial parse, as llama-server does, and passes on what
// is new: reasoning, content, and each tool call once it is complete (its arguments a whole JSON
// object: the library closes them only when the call's syntax is closed). The parses run off
// the JS thread.
import type { ToolCall } from "../api/ollama.js";
import type { NativeChatParser } from "../native/index.js";
import type { ChatOutput } from "./output.js";

interface LibraryMessage {
  content: string;
  reasoning_content: string;
  tool_calls: Array<{ name: string; arguments: string; id: string }>;
}

export class LibraryOutputParser {
  private text = "";
  private thinkingSent = "";
  private contentSent = "";
  private callsSent = 0;

  constructor(private readonly parser: NativeChatParser) {}

  /** A partial answer the family's syntax cannot start passes nothing on yet; finish() decides. */
  async push(piece: string): Promise<ChatOutput> {
    this.text += piece;
    const message = await this.parser.parse(this.text, true).then((json) => JSON.parse(json) as LibraryMessage, () => undefined);
    return message ? this.news(message, false) : { thinking: "", content: "", toolCalls: [] };
  }

  /**
   * The rest of the answer. One that does not match the family's syntax (a call cut short or with
   * arguments that are not a JSON object, a model that wandered off) is content: the raw text not
   * yet passed on, when nothing but content was.
   */
  async finish(): Promise<ChatOutput> {
    const message = await this.parser.parse(this.text, false).then((json) => JSON.parse(json) as LibraryMessage, () => undefined);
    if (!message || message.tool_calls.slice(this.callsSent).some((call) => argumentsObject(call.arguments) === undefined)) {
      const unsent = this.callsSent === 0 && this.thinkingSent === "" && this.text.startsWith(this.contentSent);
      return { thinking: "", content: unsent ? this.text.slice(this.contentSent.length) : "", toolCalls: [] };
    }
    return this.news(message, true);
  }

  private news(message: LibraryMessage, final: boolean): ChatOutput {
    const calls = message.tool_calls;
    const complete = calls.filter((call, i) => final || i < calls.length - 1 || argumentsObject(call.arguments) !== undefined);
    const toolCalls: ToolCall[] = [];
    for (; this.callsSent < complete.length; this.callsSent++) {
      const call = complete[this.callsSent]!;
      toolCalls.push({ function: { index: this.callsSent, name: call.name, arguments: argumentsObject(call.arguments)! } });
    }
    return { thinking: this.advance("thinkingSent", message.reasoning_content), content: this.advance("contentSent", message.content), toolCalls };
  }

  /** What `now` adds to what was sent (partial parses only grow; a revision is not taken back). */
  private advance(field: "thinkingSent" | "contentSent", now: string): string {
    const sent = this[field];
    if (!now.startsWith(sent)) return "";
    this[field] = now;
    return now.slice(sent.length);
  }
}

function argumentsObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
