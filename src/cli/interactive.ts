// The interactive chat of `vllama run MODEL` in a terminal, with ollama's conventions: `"""`
// opens and closes multi-line input (also for `/set system`), slash commands change the session
// (interactive-commands.ts), Ctrl+C stops an answer (at the prompt it only reminds how to leave),
// Ctrl+D exits.
import { createInterface, type Interface } from "node:readline";
import type { ChatMessage, ChatResponse } from "../api/ollama.js";
import type { Client } from "./client.js";
import { createAnswerWriter, createChatAnswerWriter, formatStats, type RequestBase } from "./answer.js";
import { takeImages } from "./image-paths.js";
import { chatRequest, preload, runCommand, setSystem, type ChatSession, type SessionSettings } from "./interactive-commands.js";
import { renderError, type InStream, type Ui } from "./ui.js";

const PROMPT = ">>> ";
const CONTINUATION = "... ";
const FENCE = '"""';
/** `/set system """...`: a system prompt in a `"""` block, as a message can be. */
const SET_SYSTEM_BLOCK = /^\/set\s+system\s+(?=""")/;

/** What one typed line means, given whether a `"""` block is open. */
export type LineResult =
  | { kind: "message"; text: string }
  | { kind: "system"; text: string }
  | { kind: "command"; name: string; args: string }
  | { kind: "more" };

type BlockKind = "message" | "system";

/** Collects input lines into messages and commands; holds a `"""` block until it closes. */
export class InputCollector {
  private block: { kind: BlockKind; lines: string[] } | undefined;

  get inBlock(): boolean {
    return this.block !== undefined;
  }

  feed(line: string): LineResult {
    if (this.block !== undefined) return this.continueBlock(line);
    const trimmed = line.trim();
    if (trimmed.startsWith(FENCE)) return this.openBlock("message", trimmed.slice(FENCE.length));
    const system = SET_SYSTEM_BLOCK.exec(trimmed);
    if (system) return this.openBlock("system", trimmed.slice(system[0].length + FENCE.length));
    if (trimmed.startsWith("/")) {
      const space = trimmed.search(/\s/);
      return space < 0
        ? { kind: "command", name: trimmed, args: "" }
        : { kind: "command", name: trimmed.slice(0, space), args: trimmed.slice(space).trim() };
    }
    return { kind: "message", text: line };
  }

  /** `rest`: what follows the opening `"""`, which may close it on the same line. */
  private openBlock(kind: BlockKind, rest: string): LineResult {
    if (rest.length >= FENCE.length && rest.endsWith(FENCE)) return { kind, text: rest.slice(0, -FENCE.length) };
    this.block = { kind, lines: rest === "" ? [] : [rest] };
    return { kind: "more" };
  }

  private continueBlock(line: string): LineResult {
    const block = this.block!;
    const close = line.trimEnd().endsWith(FENCE);
    block.lines.push(close ? line.trimEnd().slice(0, -FENCE.length) : line);
    if (!close) return { kind: "more" };
    this.block = undefined;
    return { kind: block.kind, text: block.lines.join("\n") };
  }
}

async function answer(session: ChatSession, text: string): Promise<void> {
  const { client, ui } = session;
  const controller = new AbortController();
  session.answering = controller;
  const out = createChatAnswerWriter(createAnswerWriter(ui, session.settings.wordWrap));
  let content = "";
  let final: ChatResponse | undefined;
  try {
    // Reading the images is part of the answer: a file that cannot be sent fails this turn only.
    const { prompt, images } = session.vision ? await takeImages(ui, text) : { prompt: text, images: [] };
    const messages: ChatMessage[] = [...session.messages, { role: "user", content: prompt, ...(images.length ? { images } : {}) }];
    for await (const chunk of client.chat(chatRequest(session, messages), controller.signal)) {
      out.write(chunk.message);
      content += chunk.message.content;
      if (chunk.done) final = chunk;
    }
    out.end();
    // Only a complete exchange joins the conversation: a stopped or failed one is forgotten.
    session.messages = [...messages, { role: "assistant", content }];
    if (final && session.settings.verbose) ui.stderr.write(formatStats(final));
  } catch (err) {
    out.end();
    if (!controller.signal.aborted) ui.stderr.write(renderError(ui, err));
  } finally {
    session.answering = undefined;
  }
  ui.stdout.write("\n");
}

/** Node's line editor adds no lines to its history while `historySize` (the option, kept as an untyped property) is 0. */
function historySwitch(rl: Interface): (enabled: boolean) => void {
  const editor = rl as Interface & { historySize: number };
  const size = editor.historySize;
  return (enabled) => {
    editor.historySize = enabled ? size : 0;
  };
}

/** Runs the chat until /bye or Ctrl+D. */
export async function startChat(
  client: Client,
  ui: Ui,
  base: RequestBase,
  options: { wordWrap: boolean; input: InStream; vision: boolean },
): Promise<void> {
  const settings: SessionSettings = { parameters: {}, format: base.format, wordWrap: options.wordWrap, verbose: ui.verbose };
  const target = { client, model: base.model, keepAlive: base.keep_alive, settings };
  await preload(target);
  const rl = createInterface({ input: options.input, output: ui.stdout, terminal: true, prompt: PROMPT });
  const session: ChatSession = { ...target, ui, messages: [], setHistory: historySwitch(rl), vision: options.vision };
  rl.on("SIGINT", () => onInterrupt(session, rl));
  const collector = new InputCollector();
  rl.prompt();
  for await (const line of rl) {
    const result = collector.feed(line);
    if (result.kind === "command" && (await runCommand(session, result.name, result.args))) break;
    if (result.kind === "system") setSystem(session, result.text);
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
