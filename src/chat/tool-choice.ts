// tool_choice, one meaning on every API (Ollama's /api/chat as a vllama extension, OpenAI's chat
// completions and Responses, Anthropic's Messages): "auto" offers the tools and the model decides,
// "none" withholds them (no call can be read from the answer), "required" (Anthropic's "any") and
// a named function force a call by constraining decoding to it (the chat library's grammar for the
// family's call syntax, tool-call-grammar.ts, or the one JSON call of forced-tool-call.ts for
// templates the library does not know; prompt.ts decides), which leaves no room for thinking or
// another response format. parallel_tool_calls false allows one call. Each API keeps its own wording.
import { BadRequestError } from "../api/errors.js";
import type { ChatRequest, Format } from "../api/ollama.js";
import type { ChatToolChoice, Tool } from "../api/shared-fields.js";

export type ToolChoice = "auto" | "none" | "required" | { name: string };

type Think = ChatRequest["think"];

/** How an API words the errors of a tool_choice that cannot hold. */
export interface ToolChoiceWording {
  /** A forced choice without tools. */
  needsTools: string;
  /** A named choice that names none of the tools. */
  unknownName: (name: string) => string;
  /** A forced choice beside a response format. */
  withFormat: string;
  /** A forced choice with thinking asked for; without it, forcing simply turns thinking off. */
  withThinking?: string;
}

export interface ToolSettings {
  tools?: Tool[];
  format?: Format;
  think?: Think;
  /** Present when a call is forced: "required" or the function named (in the chat spelling). */
  tool_choice?: ChatToolChoice;
}

/** The tools the model is offered, the format and thinking a request's tool_choice leaves. */
export function applyToolChoice(
  req: { tools: Tool[]; choice: ToolChoice; format?: Format; think?: Think },
  wording: ToolChoiceWording,
): ToolSettings {
  const { tools, choice, format, think } = req;
  const forced = choice !== "auto" && choice !== "none";
  if (choice === "none" || tools.length === 0) {
    if (forced) throw new BadRequestError(wording.needsTools);
    return defined({ format, think });
  }
  if (!forced) return defined({ tools, format, think });
  if (think !== undefined && think !== false && wording.withThinking) throw new BadRequestError(wording.withThinking);
  if (format !== undefined) throw new BadRequestError(wording.withFormat);
  if (choice === "required") return { tools, think: false, tool_choice: "required" };
  if (!tools.some((t) => t.function.name === choice.name)) throw new BadRequestError(wording.unknownName(choice.name));
  return { tools, think: false, tool_choice: { type: "function", function: { name: choice.name } } };
}

/** The tools a forced choice allows: all of them, or the one it names. */
export function forcedTools(tools: readonly Tool[], choice: ChatToolChoice): Tool[] {
  return typeof choice === "string" ? [...tools] : tools.filter((t) => t.function.name === choice.function.name);
}

/** The chat spelling (OpenAI's, and /api/chat's) in the common one. */
export function chatToolChoice(choice: ChatToolChoice | null | undefined): ToolChoice {
  if (choice == null) return "auto";
  return typeof choice === "string" ? choice : { name: choice.function.name };
}

/** The wording of OpenAI's chat completions and /api/chat; `formatField` names the response format. */
export function chatToolChoiceWording(formatField: string): ToolChoiceWording {
  return {
    needsTools: "invalid tool_choice: forcing a call needs tools",
    unknownName: (name) => `invalid tool_choice.function.name: no function named ${JSON.stringify(name)}`,
    withFormat: `${formatField} cannot be combined with a tool_choice that forces a call`,
  };
}

/** /api/chat's tool_choice (a vllama extension) settled into the tools, format, thinking and forced choice the request runs with. */
export function withToolChoice(req: ChatRequest): ChatRequest {
  if (req.tool_choice === undefined) return req;
  const { tool_choice, tools, format, think, ...rest } = req;
  const settings = applyToolChoice({ tools: tools ?? [], choice: chatToolChoice(tool_choice), format, think }, chatToolChoiceWording("format"));
  return { ...rest, ...settings };
}

function defined(settings: ToolSettings): ToolSettings {
  return Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined)) as ToolSettings;
}
