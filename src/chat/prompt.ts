// The prompt of a generate or chat request: the model's template (or the request's) rendered
// over its Modelfile defaults and the request, then tokenized; for chat also how to read the
// answer back (a prompt that opens `<think>`, the tool-call format its template teaches).
import { BadRequestError } from "../api/errors.js";
import type { ChatMessage, ChatRequest, Format, GenerateRequest } from "../api/ollama.js";
import type { ChatToolChoice } from "../api/shared-fields.js";
import { tokenizeText } from "../native/index.js";
import { ChatLibrary, type ChatLibraryParams, type ChatLibraryPrompt } from "./chat-library.js";
import { forcedToolCallFormat } from "./forced-tool-call.js";
import type { ChatOutputOptions } from "./output.js";
import { renderChat } from "./render-off-thread.js";
import { ChatTemplate } from "./template.js";
import { toolCallGrammar, type SamplerGrammar } from "./tool-call-grammar.js";
import { detectToolCallFormat } from "./tool-calls.js";
import { forcedTools } from "./tool-choice.js";

/** What a model's Modelfile adds to every prompt. */
export interface PromptDefaults {
  template?: string;
  system?: string;
  messages: ChatMessage[];
}

/** The tokenizer a prompt is rendered for (the native model satisfies it). */
export interface PromptTokenizer {
  readonly info: { bos: number; eos: number; addBos: boolean; chatTemplate: string };
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
  tokenizeAsync(text: string, addSpecial: boolean, parseSpecial: boolean): Promise<Int32Array>;
  tokenBytes(token: number, special: boolean): Uint8Array;
}

export interface ChatPrompt {
  tokens: number[];
  /** Settings of the parser that splits the answer into thinking, content and tool calls. */
  output: ChatOutputOptions;
  /** The chat library's grammar for the request's tools (tool-call-grammar.ts). */
  grammar?: SamplerGrammar;
  /** Special tokens of the call syntax that the answer's text shows as themselves. */
  preservedTokens?: number[];
  /** The one JSON call a forced tool_choice constrains decoding to where the library does not know the template. */
  format?: Format;
  /** Stop strings the chat library adds for the family (common_chat_params.additional_stops), as llama-server adds them. */
  stop?: string[];
}

/** What a chat request's tools ask of its prompt. */
type ToolRequest = Pick<ChatRequest, "tools" | "tool_choice" | "parallel_tool_calls">;

/** The forced choice of a request whose tool_choice forces a call ("required" or a named function). */
function forcedChoice(req: ToolRequest): ChatToolChoice | undefined {
  return req.tools?.length && req.tool_choice !== undefined && req.tool_choice !== "auto" && req.tool_choice !== "none" ? req.tool_choice : undefined;
}

/** On the project's path, a forced call is one JSON call of the tools it allows (forced-tool-call.ts). */
export function forcedCallFormat(req: ToolRequest): Format | undefined {
  const forced = forcedChoice(req);
  return forced === undefined ? undefined : forcedToolCallFormat(forcedTools(req.tools ?? [], forced));
}

/** A prompt's text before tokenization, and whether the tokenizer adds the model's BOS. */
export interface RenderedPrompt {
  text: string;
  addSpecial: boolean;
}

/**
 * A generate prompt's text: the request's text rendered as one user turn (with the system prompt,
 * and `imageMarker` once per image) when a template applies, as is when `raw` or without one
 * (the markers then lead the text). BOS is added unless it follows a previous answer's `context`.
 */
export function renderGeneratePrompt(
  req: Pick<GenerateRequest, "prompt" | "raw" | "template" | "system" | "context" | "images">,
  defaults: PromptDefaults,
  imageMarker?: string,
): RenderedPrompt {
  const templateSource = req.template ?? defaults.template;
  const images = imageMarker ? req.images ?? [] : [];
  const text = req.raw || !templateSource
    ? (imageMarker ?? "").repeat(images.length) + (req.prompt ?? "")
    : renderGenerate(req, defaults.system, templateSource, images, imageMarker);
  return { text, addSpecial: (req.context ?? []).length === 0 };
}

/** A generate prompt's tokens: after the previous answer's `context`, its rendered text. */
export async function buildGeneratePrompt(
  req: Pick<GenerateRequest, "prompt" | "raw" | "template" | "system" | "context">,
  defaults: PromptDefaults,
  tokenizer: PromptTokenizer,
): Promise<number[]> {
  const { text, addSpecial } = renderGeneratePrompt(req, defaults);
  return [...(req.context ?? []), ...(await tokenizePrompt(tokenizer, text, addSpecial))];
}

/**
 * A chat prompt's text in the model's template (its Modelfile TEMPLATE, else the GGUF's own), and
 * how to parse its answer; a long conversation renders off the JS thread (render-off-thread.ts).
 */
export async function renderChatPrompt(
  req: Pick<ChatRequest, "model" | "messages" | "tools" | "think" | "parallel_tool_calls">,
  defaults: PromptDefaults,
  tokenizer: Pick<PromptTokenizer, "info" | "tokenBytes">,
  imageMarker?: string,
): Promise<RenderedPrompt & { output: ChatOutputOptions }> {
  const template = ChatTemplate.cached(defaults.template ?? tokenizer.info.chatTemplate);
  if (req.tools?.length && !template.supportsTools) throw new BadRequestError(`${req.model} does not support tools`);
  const messages = [...systemMessages(defaults.system, req.messages), ...defaults.messages, ...req.messages];
  const { bos, eos, addBos } = tokenizer.info;
  const piece = (id: number) => (id >= 0 ? Buffer.from(tokenizer.tokenBytes(id, true)).toString("utf8") : "");
  const rendered = await renderChat(template, {
    messages, tools: req.tools, think: req.think, addGenerationPrompt: true, bosToken: piece(bos), eosToken: piece(eos), imageMarker,
  });
  return {
    text: rendered,
    // A template that writes BOS itself must not get a second one from the tokenizer.
    addSpecial: !addBos || !rendered.startsWith(piece(bos)),
    output: {
      think: req.think !== undefined && req.think !== false,
      startsInThinking: rendered.trimEnd().endsWith("<think>"),
      toolFormat: req.tools?.length ? detectToolCallFormat(template.source) : undefined,
      oneToolCall: req.parallel_tool_calls === false,
    },
  };
}

/**
 * A chat prompt's tokens, and how to parse its answer. With tools and a Jinja template whose
 * tool-call syntax llama.cpp's chat library knows, the library renders the prompt and parses the
 * answer; otherwise the project's own renderer and parser (renderChatPrompt).
 */
export async function buildChatPrompt(
  req: Pick<ChatRequest, "model" | "messages" | "tools" | "think" | "format" | "tool_choice" | "parallel_tool_calls">,
  defaults: PromptDefaults,
  tokenizer: PromptTokenizer,
): Promise<ChatPrompt> {
  const library = await libraryPrompt(req, defaults, tokenizer);
  if (library) {
    const { prompt } = library.params;
    const bos = tokenizer.info.bos >= 0 ? Buffer.from(tokenizer.tokenBytes(tokenizer.info.bos, true)).toString("utf8") : "";
    const { grammar, preservedTokens } = toolCallGrammar(library.grammarParams, tokenizer, req.parallel_tool_calls !== false);
    return {
      // A template that writes BOS itself must not get a second one from the tokenizer.
      tokens: await tokenizePrompt(tokenizer, prompt, !tokenizer.info.addBos || !prompt.startsWith(bos)),
      output: { think: false, startsInThinking: false, library: library.parser, oneToolCall: req.parallel_tool_calls === false },
      ...(grammar ? { grammar } : {}),
      preservedTokens,
      ...(library.params.additional_stops.length ? { stop: library.params.additional_stops } : {}),
    };
  }
  const { text, addSpecial, output } = await renderChatPrompt(req, defaults, tokenizer);
  const format = forcedCallFormat(req);
  return { tokens: await tokenizePrompt(tokenizer, text, addSpecial), output, ...(format ? { format } : {}) };
}

/**
 * The chat library's prompt for a request with tools over a Jinja template (the Modelfile's or the
 * GGUF's), when the library recognises the template's tool-call syntax (its format is not
 * content-only), and the library's settings its grammar comes from (for a named function, those of
 * that function alone); else undefined. A request with a response format keeps the project's path.
 */
async function libraryPrompt(
  req: Pick<ChatRequest, "model" | "messages" | "tools" | "think" | "format" | "tool_choice" | "parallel_tool_calls">,
  defaults: PromptDefaults,
  tokenizer: Pick<PromptTokenizer, "info" | "tokenBytes">,
): Promise<(ChatLibraryPrompt & { grammarParams: ChatLibraryParams }) | undefined> {
  if (!req.tools?.length) return undefined;
  const template = ChatTemplate.cached(defaults.template ?? tokenizer.info.chatTemplate);
  if (template.kind !== "jinja" || !template.supportsTools) return undefined;
  const messages = [...systemMessages(defaults.system, req.messages), ...defaults.messages, ...req.messages];
  if (req.format !== undefined || messages.some((m) => m.images?.length)) return undefined;
  const piece = (id: number) => (id >= 0 ? Buffer.from(tokenizer.tokenBytes(id, true)).toString("utf8") : "");
  const library = await ChatLibrary.cached(template.source, piece(tokenizer.info.bos), piece(tokenizer.info.eos));
  if (!library) return undefined;
  const forced = forcedChoice(req);
  // llama-server's defaults (common.h: enable_thinking, reasoning_format "deepseek": reasoning split
  // off into `thinking`) unless the request turns thinking off (think false, reasoning_effort
  // none/minimal, Anthropic's thinking disabled, a forced call): then it is neither asked nor split.
  const thinking = req.think !== false;
  const settings = {
    messages, enableThinking: thinking, reasoningFormat: thinking ? "deepseek" as const : "none" as const,
    toolChoice: forced ? "required" as const : "auto" as const, parallelToolCalls: req.parallel_tool_calls !== false,
  };
  const applied = await library.apply({ ...settings, tools: req.tools });
  if (applied.params.content_only) return undefined;
  const named = typeof forced === "object" && req.tools.length > 1;
  const grammarParams = named ? (await library.apply({ ...settings, tools: forcedTools(req.tools, forced) })).params : applied.params;
  return { ...applied, grammarParams };
}

function renderGenerate(
  req: Pick<GenerateRequest, "prompt" | "system">,
  defaultSystem: string | undefined,
  templateSource: string,
  images: string[],
  imageMarker: string | undefined,
): string {
  const system = req.system ?? defaultSystem;
  const user = { role: "user" as const, content: req.prompt ?? "", ...(images.length ? { images } : {}) };
  const messages = [...(system ? [{ role: "system" as const, content: system }] : []), user];
  return ChatTemplate.cached(templateSource).render({ messages, addGenerationPrompt: true, imageMarker });
}

/** The model's SYSTEM applies unless the conversation brings its own system message. */
function systemMessages(system: string | undefined, messages: ChatRequest["messages"]): ChatRequest["messages"] {
  if (!system || messages.some((m) => m.role === "system")) return [];
  return [{ role: "system", content: system }];
}

async function tokenizePrompt(tokenizer: PromptTokenizer, text: string, addSpecial: boolean): Promise<number[]> {
  const tokens = [...(await tokenizeText(tokenizer, text, addSpecial, true))];
  if (tokens.length === 0) throw new BadRequestError("prompt is empty after tokenization");
  return tokens;
}
