// The interactive chat of `vllama run MODEL` in a terminal, with ollama's conventions: `"""`
// opens and closes multi-line input, `/bye` exits, `/clear` forgets the conversation, `/?` helps,
// Ctrl+C stops an answer (at the prompt it only reminds how to leave), Ctrl+D exits.
import { createInterface, type Interface } from "node:readline";
import type { ChatMessage, ChatResponse } from "../api/schemas.js";
import type { Client } from "./client.js";
import { createAnswerWriter, formatStats, type RequestBase } from "./answer.js";
import { renderError, type InStream, type Ui } from "./ui.js";

const PROMPT = ">>> ";
const CONTINUATION = "... ";
const FENCE = '"""';

export const HELP_TEXT = `Available Commands:
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command

Use """ to begin a multi-line message.
`;

/** What one typed line means, given whether a `"""` block is open. */
export type LineResult =
  | { kind: "message"; text: string }
  | { kind: "command"; name: string }
  | { kind: "more" };

/** Collects input lines into messages and commands; holds a `"""` block until it closes. */
export class InputCollector {
  private block: string[] | undefined;

  get inBlock(): boolean {
    return this.block !== undefined;
  }

  feed(line: string): LineResult {
    if (this.block !== undefined) {
      const close = line.trimEnd().endsWith(FENCE);
      this.block.push(close ? line.trimEnd().slice(0, -FENCE.length) : line);
      if (!close) return { kind: "more" };
      const text = this.block.join("\n");
      this.block = undefined;
      return { kind: "message", text };
    }
    const trimmed = line.trim();
    if (trimmed.startsWith(FENCE)) {
      const rest = trimmed.slice(FENCE.length);
      if (rest.length >= FENCE.length && rest.endsWith(FENCE)) {
        return { kind: "message", text: rest.slice(0, -FENCE.length) };
      }
      this.block = rest === "" ? [] : [rest];
      return { kind: "more" };
    }
    if (trimmed.startsWith("/")) return { kind: "command", name: trimmed.split(/\s+/)[0]! };
    return { kind: "message", text: line };
  }
}

interface ChatSession {
  client: Client;
  ui: Ui;
  base: RequestBase;
  wordWrap: boolean;
  messages: ChatMessage[];
  /** Set while an answer streams, so Ctrl+C can stop it. */
  answering?: AbortController;
}

/** Loads the model (an empty chat), so the first answer does not wait for it and errors show early. */
async function preload(session: ChatSession): Promise<void> {
  for await (const _ of session.client.chat({ ...session.base, messages: [] })) {
    // drain to the final object
  }
}

async function answer(session: ChatSession, text: string): Promise<void> {
  const { client, ui } = session;
  const controller = new AbortController();
  session.answering = controller;
  const out = createAnswerWriter(ui, session.wordWrap);
  const messages: ChatMessage[] = [...session.messages, { role: "user", content: text }];
  let content = "";
  let final: ChatResponse | undefined;
  try {
    for await (const chunk of client.chat({ ...session.base, messages }, controller.signal)) {
      out.write(chunk.message.content);
      content += chunk.message.content;
      if (chunk.done) final = chunk;
    }
    out.end();
    // Only a complete exchange joins the conversation: a stopped or failed one is forgotten.
    session.messages = [...messages, { role: "assistant", content }];
    if (final && ui.verbose) ui.stderr.write(formatStats(final));
  } catch (err) {
    out.end();
    if (!controller.signal.aborted) ui.stderr.write(renderError(ui, err));
  } finally {
    session.answering = undefined;
  }
  ui.stdout.write("\n");
}

/** Returns true when the session should end. */
function runCommand(session: ChatSession, name: string): boolean {
  const { ui } = session;
  switch (name) {
    case "/bye":
    case "/exit":
      return true;
    case "/clear":
      session.messages = [];
      ui.stdout.write("Cleared session context\n");
      return false;
    case "/?":
    case "/help":
      ui.stdout.write(HELP_TEXT);
      return false;
    default:
      ui.stdout.write(`Unknown command '${name}'. Type /? for help\n`);
      return false;
  }
}

/** Runs the chat until /bye or Ctrl+D. */
export async function startChat(
  client: Client,
  ui: Ui,
  base: RequestBase,
  options: { wordWrap: boolean; input: InStream },
): Promise<void> {
  const session: ChatSession = { client, ui, base, wordWrap: options.wordWrap, messages: [] };
  await preload(session);
  const rl = createInterface({ input: options.input, output: ui.stdout, terminal: true, prompt: PROMPT });
  rl.on("SIGINT", () => onInterrupt(session, rl));
  const collector = new InputCollector();
  rl.prompt();
  for await (const line of rl) {
    const result = collector.feed(line);
    if (result.kind === "command" && runCommand(session, result.name)) break;
    if (result.kind === "message" && result.text.trim() !== "") await answer(session, result.text);
    rl.setPrompt(collector.inBlock ? CONTINUATION : PROMPT);
    rl.prompt();
  }
  rl.close();
}

function onInterrupt(session: ChatSession, rl: Interface): void {
  if (session.answering) {
    session.answering.abort();
    return;
  }
  rl.write(null, { ctrl: true, name: "u" }); // clear the line being typed
  session.ui.stdout.write("\nUse Ctrl + d or /bye to exit.\n");
  rl.prompt();
}
