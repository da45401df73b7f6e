// Writing a model's answer to the terminal: streamed, word-wrapped, with optional timings.
import type { ChatRequest, GenerateResponse } from "../api/ollama.js";
import type { Ui } from "./ui.js";

/** What every request of one `run` shares. */
export type RequestBase = Pick<ChatRequest, "model" | "format" | "keep_alive">;

/** Streams answer text to stdout, word-wrapped in a terminal, and ends it with one newline. */
export interface AnswerWriter {
  write(text: string): void;
  end(): void;
}

export function createAnswerWriter(ui: Ui, wordWrap: boolean): AnswerWriter {
  const width = ui.stdout.isTTY && wordWrap ? ui.stdout.columns ?? 0 : 0;
  const wrapper = width > 0 ? new WordWrapper((text) => ui.stdout.write(text), width) : undefined;
  let endsWithNewline = true;
  return {
    write(text) {
      if (text === "") return;
      if (wrapper) wrapper.push(text);
      else ui.stdout.write(text);
      endsWithNewline = text.endsWith("\n");
    },
    end() {
      wrapper?.flush();
      if (!endsWithNewline) ui.stdout.write("\n");
      endsWithNewline = true;
    },
  };
}

/**
 * Streams a chat answer, showing a thinking model's reasoning as `ollama run` does:
 * "Thinking...", the thoughts, "...done thinking.", a blank line, then the answer.
 */
export function createChatAnswerWriter(out: AnswerWriter): { write(message: { content: string; thinking?: string }): void; end(): void } {
  let thinking = false;
  const stopThinking = () => {
    if (thinking) out.write("\n...done thinking.\n\n");
    thinking = false;
  };
  return {
    write({ content, thinking: thought }) {
      if (thought) {
        if (!thinking) out.write("Thinking...\n");
        thinking = true;
        out.write(thought);
      }
      if (content !== "") stopThinking();
      out.write(content);
    },
    end() {
      stopThinking();
      out.end();
    },
  };
}

/**
 * Breaks streamed text at spaces so words are not cut at the terminal's edge. A word is held
 * until it ends (a space or newline), then goes on this line or the next.
 */
export class WordWrapper {
  private column = 0;
  private word = "";

  constructor(
    private readonly write: (text: string) => void,
    private readonly width: number,
  ) {}

  push(text: string): void {
    for (const ch of text) {
      if (ch === "\n") {
        this.flush();
        this.write("\n");
        this.column = 0;
      } else if (ch === " ") {
        this.flush();
        if (this.column + 1 >= this.width) {
          this.write("\n");
          this.column = 0;
        } else {
          this.write(" ");
          this.column++;
        }
      } else {
        this.word += ch;
        if (this.word.length >= this.width) this.flush(); // longer than a line: cut it
      }
    }
  }

  flush(): void {
    if (this.word === "") return;
    if (this.column > 0 && this.column + this.word.length > this.width) {
      this.write("\n");
      this.column = 0;
    }
    this.write(this.word);
    this.column += this.word.length;
    this.word = "";
  }
}

function formatNs(ns: number): string {
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(3)}s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(3)}ms`;
  return `${(ns / 1e3).toFixed(3)}µs`;
}

function rate(count: number | undefined, ns: number | undefined): string {
  return count && ns ? `${((count * 1e9) / ns).toFixed(2)} tokens/s` : "n/a";
}

/** `ollama run --verbose` timings, from a final response's metrics. */
export function formatStats(final: Pick<GenerateResponse, "total_duration" | "load_duration" | "prompt_eval_count" | "prompt_eval_duration" | "eval_count" | "eval_duration">): string {
  const rows: Array<[string, string | undefined]> = [
    ["total duration", final.total_duration === undefined ? undefined : formatNs(final.total_duration)],
    ["load duration", final.load_duration === undefined ? undefined : formatNs(final.load_duration)],
    ["prompt eval count", final.prompt_eval_count === undefined ? undefined : `${final.prompt_eval_count} token(s)`],
    ["prompt eval duration", final.prompt_eval_duration === undefined ? undefined : formatNs(final.prompt_eval_duration)],
    ["prompt eval rate", rate(final.prompt_eval_count, final.prompt_eval_duration)],
    ["eval count", final.eval_count === undefined ? undefined : `${final.eval_count} token(s)`],
    ["eval duration", final.eval_duration === undefined ? undefined : formatNs(final.eval_duration)],
    ["eval rate", rate(final.eval_count, final.eval_duration)],
  ];
  return rows
    .filter((row): row is [string, string] => row[1] !== undefined)
    .map(([label, value]) => `${`${label}:`.padEnd(22)}${value}\n`)
    .join("");
}
