// The slash commands of the interactive chat, with the names, texts and semantics of `ollama run`
// (its cmd/interactive.go): /set, /show, /load, /save, /clear, /?, /bye. What /set changes is sent
// with every later request; /save turns the session into a model through /api/create.
import {
  ChatRequestSchema,
  type ChatMessage,
  type ChatRequest,
  type Options,
  type ShowResponse,
} from "../api/ollama.js";
import { addParameter, formatParametersText } from "../models/modelfile.js";
import type { ModelParameters } from "../models/types.js";
import type { Body, Client } from "./client.js";
import { renderShow } from "./models.js";
import { CliError, renderError, withPullHint, type Ui } from "./ui.js";

export const HELP_TEXT = `Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use """ to begin a multi-line message.

`;

export const SET_HELP = `Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think             Enable thinking
  /set nothink           Disable thinking

`;

export const SHOW_HELP = `Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template

`;

// Node's line editor has these (Ollama's Ctrl + g, an external editor, it has not).
export const SHORTCUTS_HELP = `Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
   Alt + b            Move back (left) one word
   Alt + f            Move forward (right) one word
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor

  Ctrl + l            Clear the screen
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit vllama (/bye)

`;

// Only the most common ones, as Ollama lists them; any Modelfile PARAMETER is accepted.
const PARAMETERS_HELP = `Available Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter num_gpu <int>          The number of layers to send to the GPU
  /set parameter stop <string> <string> ...   Set the stop parameters

`;

/** What /set changes: sent with every request from then on, and kept by /save. */
export interface SessionSettings {
  system?: string;
  parameters: ModelParameters;
  format?: ChatRequest["format"];
  think?: ChatRequest["think"];
  wordWrap: boolean;
  /** Timings after each answer. */
  verbose: boolean;
}

export interface ChatSession {
  client: Client;
  ui: Ui;
  model: string;
  keepAlive?: ChatRequest["keep_alive"];
  settings: SessionSettings;
  /** The conversation, without the system prompt: that goes first in each request. */
  messages: ChatMessage[];
  /** Turns the line editor's history (Up and Down) on or off. */
  setHistory(enabled: boolean): void;
  /** Set while an answer streams, so Ctrl+C can stop it. */
  answering?: AbortController;
  /** The model takes images: paths of image files in a message are sent as its images (image-paths.ts). */
  vision?: boolean;
}

/** What a request needs from the session. */
type RequestSession = Pick<ChatSession, "client" | "model" | "keepAlive" | "settings">;

function sessionOptions(settings: SessionSettings): Options | undefined {
  return Object.keys(settings.parameters).length > 0 ? (settings.parameters as Options) : undefined;
}

/** The /api/chat request for `messages`, with everything the session has set. */
export function chatRequest(session: RequestSession, messages: ChatMessage[]): Body<ChatRequest> {
  const { system, format, think } = session.settings;
  return {
    model: session.model,
    keep_alive: session.keepAlive,
    format,
    think,
    options: sessionOptions(session.settings),
    messages: system ? [{ role: "system", content: system }, ...messages] : messages,
  };
}

/** Loads the model with the session's options, so the first answer does not wait and errors show early. */
export async function preload(session: RequestSession): Promise<void> {
  // No messages at all (not even the system prompt): the server then only loads the model.
  for await (const _ of session.client.chat({ ...chatRequest(session, []), messages: [] })) {
    // drain to the final object
  }
}

function say(session: ChatSession, text: string): void {
  session.ui.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

function sayError(session: ChatSession, err: unknown): void {
  session.ui.stderr.write(renderError(session.ui, err));
}

function words(text: string): string[] {
  return text.split(/\s+/).filter((word) => word !== "");
}

/** "parameter temperature 0" -> ["parameter", "temperature 0"]. */
function firstWord(text: string): [string, string] {
  const trimmed = text.trim();
  const space = trimmed.search(/\s/);
  return space < 0 ? [trimmed, ""] : [trimmed.slice(0, space), trimmed.slice(space).trim()];
}

type Handler = (session: ChatSession, args: string) => void | Promise<void>;

// ---------------------------------------------------------------------------------------------
// /set

export function setSystem(session: ChatSession, text: string): void {
  session.settings.system = text;
  say(session, "Set system message.");
}

function setParameter(session: ChatSession, args: string): void {
  const [name, ...values] = words(args);
  if (name === undefined || values.length === 0) return say(session, PARAMETERS_HELP);
  const parsed: ModelParameters = {};
  try {
    // Typed and checked as a Modelfile PARAMETER line is; several values make a list (stop).
    addParameter(parsed, name, values.length === 1 ? values[0] : values);
  } catch (err) {
    return sayError(session, err);
  }
  // Unlike repeated PARAMETER lines, a new /set replaces the value, `stop` included (as Ollama).
  Object.assign(session.settings.parameters, parsed);
  say(session, `Set parameter '${name}' to '${values.join(", ")}'`);
}

function setFormat(session: ChatSession, args: string): void {
  if (args !== "json") return sayError(session, new CliError("invalid or missing format. For 'json' mode use '/set format json'"));
  session.settings.format = "json";
  say(session, "Set format to 'json' mode.");
}

/** Ollama's warning: the setting is kept, but the model will not think. */
async function warnIfNoThinking(session: ChatSession): Promise<void> {
  try {
    const info = await session.client.show(session.model);
    if (!info.capabilities.includes("thinking")) {
      session.ui.stderr.write(`warning: model "${session.model}" does not support thinking output\n`);
    }
  } catch {
    // the next request says what is wrong
  }
}

async function setThink(session: ChatSession, level: string): Promise<void> {
  if (level !== "") {
    const checked = ChatRequestSchema.shape.think.safeParse(level);
    if (!checked.success) {
      return sayError(session, new CliError(`invalid think level '${level}': ${checked.error.issues[0]?.message}`));
    }
  }
  session.settings.think = level === "" ? true : (level as ChatRequest["think"]);
  await warnIfNoThinking(session);
  say(session, level === "" ? "Set 'think' mode." : `Set 'think' mode to '${level}'.`);
}

async function setNoThink(session: ChatSession): Promise<void> {
  session.settings.think = false;
  await warnIfNoThinking(session);
  say(session, "Set 'nothink' mode.");
}

/** A /set that switches a mode and says so. */
function mode(message: string, apply: (settings: SessionSettings) => void): Handler {
  return (session) => {
    apply(session.settings);
    say(session, message);
  };
}

const SETTINGS = new Map<string, Handler>([
  ["parameter", setParameter],
  ["system", (session, text) => (text === "" ? say(session, SET_HELP) : setSystem(session, text))],
  // Silent, as in Ollama.
  ["history", (session) => session.setHistory(true)],
  ["nohistory", (session) => session.setHistory(false)],
  ["wordwrap", mode("Set 'wordwrap' mode.", (s) => (s.wordWrap = true))],
  ["nowordwrap", mode("Set 'nowordwrap' mode.", (s) => (s.wordWrap = false))],
  ["format", setFormat],
  ["noformat", mode("Disabled format.", (s) => (s.format = undefined))],
  ["verbose", mode("Set 'verbose' mode.", (s) => (s.verbose = true))],
  ["quiet", mode("Set 'quiet' mode.", (s) => (s.verbose = false))],
  ["think", setThink],
  ["nothink", setNoThink],
]);

async function setCommand(session: ChatSession, args: string): Promise<void> {
  const [name, rest] = firstWord(args);
  if (name === "" || name === "?") return say(session, SET_HELP);
  const handler = SETTINGS.get(name);
  if (!handler) return say(session, `Unknown command '/set ${name}'. Type /? for help`);
  await handler(session, rest);
}

// ---------------------------------------------------------------------------------------------
// /show

function orNone(text: string | undefined, none: string): string {
  return text ? text : none;
}

function indented(text: string): string {
  return text
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n");
}

function showParameters(info: ShowResponse, session: ChatSession): string {
  const own = info.parameters.trim() === "" ? "  No additional parameters were specified for this model." : indented(info.parameters);
  const set = formatParametersText(session.settings.parameters);
  return `Model defined parameters:\n${own}\n\n${set === "" ? "" : `User defined parameters:\n${indented(set)}\n\n`}`;
}

const SHOWN = new Map<string, (info: ShowResponse, session: ChatSession) => string>([
  ["info", (info) => renderShow(info, false)],
  ["license", (info) => orNone(info.license, "No license was specified for this model.")],
  ["modelfile", (info) => info.modelfile],
  ["parameters", showParameters],
  // The server puts the session's system prompt in `system`; older servers did not.
  ["system", (info, session) => orNone(session.settings.system || info.system, "No system message was specified for this model.")],
  ["template", (info) => orNone(info.template, "No prompt template was specified for this model.")],
]);

async function showCommand(session: ChatSession, args: string): Promise<void> {
  const [what] = firstWord(args);
  if (what === "") return say(session, SHOW_HELP);
  const render = SHOWN.get(what);
  if (!render) return say(session, `Unknown command '/show ${what}'. Type /? for help`);
  const { system } = session.settings;
  let info: ShowResponse;
  try {
    // With the session's settings, as Ollama sends them: the Modelfile shown is what /save makes.
    info = await session.client.show(session.model, false, { system, options: sessionOptions(session.settings) });
  } catch (err) {
    return sayError(session, withPullHint(err, session.model));
  }
  say(session, render(info, session));
}

// ---------------------------------------------------------------------------------------------
// /load, /save, /clear, /?

async function loadCommand(session: ChatSession, args: string): Promise<void> {
  const names = words(args);
  if (names.length !== 1) return say(session, "Usage:\n  /load <modelname>");
  const previous = session.model;
  session.model = names[0]!;
  say(session, `Loading model '${session.model}'`);
  try {
    await preload(session);
  } catch (err) {
    session.model = previous; // a model that cannot load changes nothing
    return sayError(session, withPullHint(err, names[0]!));
  }
  session.messages = [];
}

/** The session as a new model: the current one with the system prompt, parameters and conversation. */
async function saveCommand(session: ChatSession, args: string): Promise<void> {
  const names = words(args);
  if (names.length !== 1) return say(session, "Usage:\n  /save <modelname>");
  const request = {
    model: names[0]!,
    from: session.model,
    system: session.settings.system,
    parameters: sessionOptions(session.settings),
    messages: session.messages.length > 0 ? session.messages : undefined,
  };
  try {
    for await (const _ of session.client.create(request)) {
      // drain to "success"
    }
  } catch (err) {
    return sayError(session, err);
  }
  say(session, `Created new model '${names[0]}'`);
}

function clearCommand(session: ChatSession): void {
  session.messages = [];
  say(session, "Cleared session context");
}

const HELP_TOPICS = new Map([
  ["set", SET_HELP],
  ["/set", SET_HELP],
  ["show", SHOW_HELP],
  ["/show", SHOW_HELP],
  ["shortcut", SHORTCUTS_HELP],
  ["shortcuts", SHORTCUTS_HELP],
]);

function helpCommand(session: ChatSession, args: string): void {
  say(session, HELP_TOPICS.get(firstWord(args)[0]) ?? HELP_TEXT);
}

const COMMANDS = new Map<string, Handler>([
  ["/set", setCommand],
  ["/show", showCommand],
  ["/load", loadCommand],
  ["/save", saveCommand],
  ["/clear", clearCommand],
  ["/?", helpCommand],
  ["/help", helpCommand],
]);

const EXIT_COMMANDS = new Set(["/bye", "/exit"]);

/** Runs one slash command; returns true when the session should end. */
export async function runCommand(session: ChatSession, name: string, args: string): Promise<boolean> {
  if (EXIT_COMMANDS.has(name)) return true;
  const handler = COMMANDS.get(name);
  if (handler) await handler(session, args);
  else say(session, `Unknown command '${name}'. Type /? for help`);
  return false;
}
