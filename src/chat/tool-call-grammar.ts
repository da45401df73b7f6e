// The sampler settings llama.cpp's chat library gives a request's tools, as llama-server builds
// its sampler from common_chat_params (tools/server/server-schema.cpp, common/sampling.cpp): with
// tool_choice "auto" a lazy grammar (decoding is free until a trigger, then the family's call
// syntax is forced), with a forced choice the library's "required" grammar from the first token
// (after the assistant's turn header the prompt ended with), and the tokens the grammar writes as
// themselves. llama.cpp's "required" lets text come before the call and, with Hermes-style
// families, any number of calls; here it means what OpenAI's does: the answer is a call (at
// least one; exactly one with parallel_tool_calls false), so the root rule is narrowed. The
// blanks between a call's parts are narrowed too (narrowedSpace).
import type { SamplerParams } from "../native/index.js";
import type { ChatLibraryParams } from "./chat-library.js";

/** The grammar fields of the native sampler's settings. */
export type SamplerGrammar = Required<Pick<SamplerParams, "grammar">> & Pick<SamplerParams, "grammarTriggers" | "grammarPrefix">;

export interface ToolCallGrammar {
  grammar?: SamplerGrammar;
  /** Special tokens of the call syntax that the answer's text must show (`[TOOL_CALLS]`, ...). */
  preservedTokens: number[];
}

/** What turning trigger words and preserved tokens into token ids needs. */
export interface GrammarTokenizer {
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
}

/** The sampler settings of an applied prompt; `parallel` false narrows the grammar to one call. */
export function toolCallGrammar(params: ChatLibraryParams, tokenizer: GrammarTokenizer, parallel: boolean): ToolCallGrammar {
  const single = (text: string) => {
    const tokens = tokenizer.tokenize(text, false, true);
    return tokens.length === 1 ? tokens[0]! : undefined;
  };
  const preservedTokens = params.preserved_tokens.map(single).filter((t) => t !== undefined);
  if (params.grammar === "") return { preservedTokens };
  const grammar = narrowedSpace(narrowedRoot(params.grammar, { textFirst: params.grammar_lazy, manyCalls: parallel }));
  if (!params.grammar_lazy) return { grammar: { grammar, grammarPrefix: params.generation_prompt }, preservedTokens };
  const patterns: string[] = [];
  const tokens: number[] = [];
  for (const trigger of params.grammar_triggers) {
    if (trigger.type === "token") {
      tokens.push(trigger.token);
    } else if (trigger.type === "word") {
      // A word that is one preserved token triggers on that token (llama-server's rule).
      const token = single(trigger.value);
      if (token !== undefined && preservedTokens.includes(token)) tokens.push(token);
      else patterns.push(escapeRegExp(trigger.value));
    } else {
      patterns.push(trigger.type === "pattern" ? trigger.value : anchored(trigger.value));
    }
  }
  return { grammar: { grammar, grammarTriggers: { patterns, tokens } }, preservedTokens };
}

/**
 * The grammar with its root rule narrowed: without `textFirst` the root's free text before the
 * call (its top-level `until-N` items, any text short of the call's opening) goes; without
 * `manyCalls` a root of several calls (`tool-calls`, the `tool-call` rule repeated) becomes one
 * `tool-call` (with parallel_tool_calls false the library writes that rule as exactly one call).
 */
export function narrowedRoot(grammar: string, allow: { textFirst: boolean; manyCalls: boolean }): string {
  const lines = grammar.split("\n");
  const i = lines.findIndex((line) => line.startsWith("root ::= "));
  if (i < 0) return grammar;
  const items = topLevelItems(lines[i]!.slice("root ::= ".length))
    .filter((item) => allow.textFirst || !/^until-[\w-]+\??$/.test(item))
    .map((item) => (!allow.manyCalls && item === "tool-calls" ? "tool-call" : item));
  lines[i] = `root ::= ${items.join(" ")}`;
  return lines.join("\n");
}

/**
 * The library's `space` rule (json-schema-to-grammar's, in every family's grammar: between a
 * call's parts and inside its JSON) allows up to 2 newlines and 20 blanks at each place; a model
 * whose choices the grammar mostly refuses fills them (the random demo model's forced call took
 * ~200 tokens, 2026-12-02). Here a place takes one blank or one newline: a call on one line, or
 * a part a line.
 */
export function narrowedSpace(grammar: string): string {
  return grammar.replace(/^space ::= .*$/m, 'space ::= | " " | "\\n"');
}

/** A rule body's items at depth 0: quoted strings, character classes and groups kept whole. */
function topLevelItems(body: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let current = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '"' || c === "[") {
      const close = c === '"' ? '"' : "]";
      let j = i + 1;
      while (j < body.length && body[j] !== close) j += body[j] === "\\" ? 2 : 1;
      current += body.slice(i, j + 1);
      i = j;
      continue;
    }
    if (c === "(") depth++;
    if (c === ")") depth--;
    if (c === " " && depth === 0) {
      if (current) items.push(current);
      current = "";
    } else {
      current += c;
    }
  }
  if (current) items.push(current);
  return items;
}

/** A word as a regular expression matching it literally (llama.cpp's regex_escape). */
function escapeRegExp(word: string): string {
  return word.replace(/[.^$|()*+?[\]{}\\]/g, "\\$&");
}

/** A pattern that must match the whole text generated so far (common/sampling.cpp's PATTERN_FULL). */
function anchored(pattern: string): string {
  if (pattern === "") return "^$";
  return `${pattern.startsWith("^") ? "" : "^"}${pattern}${pattern.endsWith("$") ? "" : "$"}`;
}
