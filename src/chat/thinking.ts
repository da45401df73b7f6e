import { partialSuffixLength } from "./text.js";

/** Reasoning (Ollama's `message.thinking`) and the answer that follows it. */
export interface ThinkingSplit {
  thinking: string;
  content: string;
}

export interface ThinkingOptions {
  /** The prompt already opened the block (e.g. DeepSeek-R1's template ends in `<think>\n`). */
  startsInThinking?: boolean;
}

const OPEN = "<think>";
const CLOSE = "</think>";

type State = "start" | "thinking" | "afterThinking" | "content";

/**
 * Separates a leading `<think>...</think>` block from the answer as text streams in. The thinking is
 * trimmed and the answer's leading whitespace dropped; text without a leading `<think>` is all answer
 * (unless `startsInThinking`). Partial tags and whitespace that may end the thinking are held back.
 */
export class ThinkingStreamParser {
  private buffer = "";
  private state: State = "start";
  private thinkingBegun = false;
  /** Whitespace inside the thinking, emitted only once more thinking follows it. */
  private pendingWhitespace = "";

  constructor(private readonly options: ThinkingOptions = {}) {}

  push(chunk: string): ThinkingSplit {
    this.buffer += chunk;
    const out: ThinkingSplit = { thinking: "", content: "" };
    for (;;) {
      if (this.state === "start") {
        const text = this.buffer.trimStart();
        if (text.startsWith(OPEN)) {
          this.buffer = text.slice(OPEN.length);
          this.state = "thinking";
        } else if (OPEN.startsWith(text)) {
          return out; // only whitespace or a partial `<think>` so far
        } else {
          this.state = this.options.startsInThinking ? "thinking" : "content";
        }
      } else if (this.state === "thinking") {
        const close = this.buffer.indexOf(CLOSE);
        const end = close >= 0 ? close : this.buffer.length - partialSuffixLength(this.buffer, CLOSE);
        out.thinking += this.thinkingText(this.buffer.slice(0, end));
        this.buffer = this.buffer.slice(close >= 0 ? close + CLOSE.length : end);
        if (close < 0) return out;
        this.state = "afterThinking";
      } else if (this.state === "afterThinking") {
        this.buffer = this.buffer.trimStart();
        if (!this.buffer) return out;
        this.state = "content";
      } else {
        out.content += this.buffer;
        this.buffer = "";
        return out;
      }
    }
  }

  /** What is still held once generation ended: an unclosed thought, or text that never became one. */
  finish(): ThinkingSplit {
    const held = this.buffer;
    this.buffer = "";
    if (this.state === "thinking") return { thinking: this.thinkingText(held), content: "" };
    if (this.state === "start" && this.options.startsInThinking) return { thinking: this.thinkingText(held), content: "" };
    return { thinking: "", content: this.state === "afterThinking" ? "" : held };
  }

  /** Thinking text to emit now: leading whitespace dropped, trailing whitespace held until more follows. */
  private thinkingText(text: string): string {
    let emit = this.pendingWhitespace + text;
    if (!this.thinkingBegun) emit = emit.trimStart();
    const trimmed = emit.trimEnd();
    this.pendingWhitespace = emit.slice(trimmed.length);
    if (trimmed) this.thinkingBegun = true;
    return trimmed;
  }
}

/** Splits a finished output; the same rules as streaming it through ThinkingStreamParser. */
export function splitThinking(text: string, options: ThinkingOptions = {}): ThinkingSplit {
  const parser = new ThinkingStreamParser(options);
  const streamed = parser.push(text);
  const rest = parser.finish();
  return { thinking: streamed.thinking + rest.thinking, content: streamed.content + rest.content };
}
