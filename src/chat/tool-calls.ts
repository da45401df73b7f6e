import type { ToolCall } from "../api/ollama.js";
import { partialSuffixLength } from "./text.js";

// Thinking lives in its own module; re-exported because callers treat output parsing as one API.
export { splitThinking, ThinkingStreamParser, type ThinkingOptions, type ThinkingSplit } from "./thinking.js";

/**
 * How a model writes tool calls in its output, read off its chat template:
 * - hermes (Hermes 2 Pro/3, Qwen2.5, Qwen3): `<tool_call>{"name": .., "arguments": {..}}</tool_call>`, one per block.
 * - llama3 (Llama 3.1/3.2/3.3): a bare `{"name": .., "parameters": {..}}`, or JSON after `<|python_tag|>`.
 * - mistral (Nemo, Small): `[TOOL_CALLS][{"name": .., "arguments": {..}}, ..]`, or `[TOOL_CALLS]name[ARGS]{..}`.
 * - generic: no marker; the whole answer is a JSON call object (or an array of them).
 * Every format also accepts the generic form, since models drop their markers now and then.
 * Parse only when the request gave tools: without them every output is plain content.
 */
export type ToolCallFormat = "hermes" | "llama3" | "mistral" | "generic";

export interface ParsedToolCalls {
  /** The text outside the calls; whitespace next to a call is dropped. */
  content: string;
  toolCalls: ToolCall[];
}

/** A parse of the output so far: the calls before `settled` stay what they are whatever text follows. */
interface PartialParse extends ParsedToolCalls {
  settled: number;
}

/** The tool-call format a chat template (Jinja or Ollama Go) teaches its model. */
export function detectToolCallFormat(template: string): ToolCallFormat {
  if (template.includes("<tool_call>")) return "hermes";
  if (template.includes("[TOOL_CALLS]")) return "mistral";
  if (template.includes("<|python_tag|>") || (template.includes("<|start_header_id|>") && template.includes('"parameters"'))) {
    return "llama3";
  }
  return "generic";
}

const MARKERS: Record<ToolCallFormat, readonly string[]> = {
  hermes: ["<tool_call>"],
  llama3: ["<|python_tag|>"],
  mistral: ["[TOOL_CALLS]"],
  generic: [],
};

/** `open`: calls accepted only because the text ends there (a closing tag may still come, or not). */
type Part = { kind: "text"; text: string } | { kind: "calls"; calls: ToolCall[]; open?: boolean };

/** Splits a finished output into content and tool calls. Malformed calls stay in the content; never throws. */
export function parseToolCalls(format: ToolCallFormat, text: string): ParsedToolCalls {
  const { content, toolCalls } = parseSoFar(format, text);
  return { content, toolCalls };
}

function parseSoFar(format: ToolCallFormat, text: string): PartialParse {
  const parts: Part[] = [];
  let position = 0;
  const leading = leadingJsonCalls(text);
  if (leading) {
    parts.push({ kind: "calls", calls: leading.calls });
    position = leading.end;
  }
  let searchFrom = position;
  for (;;) {
    const marker = nextMarker(text, MARKERS[format], searchFrom);
    if (!marker) break;
    const payload = parsePayload(format, text, marker.end);
    if (!payload) {
      searchFrom = marker.end; // not a well-formed call: the marker stays as text
      continue;
    }
    parts.push({ kind: "text", text: text.slice(position, marker.start) }, { kind: "calls", calls: payload.calls, open: payload.open });
    position = searchFrom = payload.end;
  }
  parts.push({ kind: "text", text: text.slice(position) });
  return assemble(parts);
}

/** Joins the text parts, trimming whitespace that only separated them from calls. */
function assemble(parts: Part[]): PartialParse {
  let content = "";
  const toolCalls: ToolCall[] = [];
  let settled = -1;
  parts.forEach((part, i) => {
    if (part.kind === "calls") {
      if (part.open && settled < 0) settled = toolCalls.length;
      toolCalls.push(...part.calls);
      return;
    }
    let text = part.text;
    if (parts[i - 1]?.kind === "calls") text = text.trimStart();
    if (parts[i + 1]?.kind === "calls") text = text.trimEnd();
    content += text;
  });
  return {
    content,
    toolCalls: toolCalls.map((call, index) => ({ function: { ...call.function, index } })),
    settled: settled < 0 ? toolCalls.length : settled,
  };
}

function nextMarker(text: string, markers: readonly string[], from: number): { start: number; end: number } | undefined {
  let best: { start: number; end: number } | undefined;
  for (const marker of markers) {
    const start = text.indexOf(marker, from);
    if (start >= 0 && (!best || start < best.start)) best = { start, end: start + marker.length };
  }
  return best;
}

interface CallsAt {
  calls: ToolCall[];
  /** Offset just past the calls. */
  end: number;
  /** Taken only because the text ended where a closing tag was due. */
  open?: boolean;
}

/** An answer that opens with JSON call objects: llama3's native form and every model's marker-less fallback. */
function leadingJsonCalls(text: string): CallsAt | undefined {
  const start = text.length - text.trimStart().length;
  return jsonCallSequence(text, start, { requireArguments: true });
}

function parsePayload(format: ToolCallFormat, text: string, start: number): CallsAt | undefined {
  switch (format) {
    case "hermes":
      return closedBy(text, jsonCallSequence(text, skipWhitespace(text, start)), "</tool_call>");
    case "llama3":
      return jsonCallSequence(text, skipWhitespace(text, start));
    case "mistral":
      return jsonCallSequence(text, skipWhitespace(text, start)) ?? mistralNamedCall(text, start);
    case "generic":
      return undefined;
  }
}

/** The closing tag must follow, unless the output simply ended (generation stopped right after the JSON). */
function closedBy(text: string, calls: CallsAt | undefined, closeTag: string): CallsAt | undefined {
  if (!calls) return undefined;
  const after = skipWhitespace(text, calls.end);
  if (text.startsWith(closeTag, after)) return { calls: calls.calls, end: after + closeTag.length };
  return after === text.length ? { ...calls, open: true } : undefined;
}

/** Mistral's newer form: `name[ARGS]{...}`, optionally `name[CALL_ID]id[ARGS]{...}`. */
function mistralNamedCall(text: string, start: number): CallsAt | undefined {
  const header = /\s*([\w.-]+)(?:\[CALL_ID\][\w-]*)?\[ARGS\]\s*/y;
  header.lastIndex = start;
  const match = header.exec(text);
  if (!match) return undefined;
  const argsEnd = jsonValueEnd(text, header.lastIndex);
  const args = argsEnd < 0 ? undefined : toArguments(tryParseJson(text.slice(header.lastIndex, argsEnd)));
  if (!args) return undefined;
  return { calls: [{ function: { name: match[1]!, arguments: args } }], end: argsEnd };
}

/**
 * Consecutive JSON call objects (or arrays of them) from `start`, separated by whitespace, `,` or `;`.
 * Stops at the first value that is not a complete, valid call; undefined when there is none at all.
 */
function jsonCallSequence(text: string, start: number, options: { requireArguments?: boolean } = {}): CallsAt | undefined {
  const calls: ToolCall[] = [];
  let end = start;
  let position = start;
  while (text[position] === "{" || text[position] === "[") {
    const valueEnd = jsonValueEnd(text, position);
    if (valueEnd < 0) break;
    const value = tryParseJson(text.slice(position, valueEnd));
    const items = Array.isArray(value) ? value : [value];
    const parsed = items.map((item) => toToolCall(item, options.requireArguments ?? false));
    if (parsed.length === 0 || parsed.some((call) => !call)) break;
    calls.push(...(parsed as ToolCall[]));
    end = valueEnd;
    position = skipSeparators(text, valueEnd);
  }
  return calls.length > 0 ? { calls, end } : undefined;
}

/** `{"name", "arguments"|"parameters"}`, also wrapped OpenAI-style as `{"type": "function", "function": {...}}`. */
function toToolCall(value: unknown, requireArguments: boolean): ToolCall | undefined {
  if (!isRecord(value)) return undefined;
  const fn = isRecord(value.function) ? value.function : value;
  if (typeof fn.name !== "string" || fn.name === "") return undefined;
  const raw = fn.arguments ?? fn.parameters;
  if (raw === undefined) return requireArguments ? undefined : { function: { name: fn.name, arguments: {} } };
  const args = toArguments(raw);
  return args ? { function: { name: fn.name, arguments: args } } : undefined;
}

/** Arguments are an object; some models write it as a JSON string. */
function toArguments(raw: unknown): Record<string, unknown> | undefined {
  const value = typeof raw === "string" ? tryParseJson(raw) : raw;
  return isRecord(value) ? value : undefined;
}

/** Offset just past the JSON object/array starting at `start`, or -1 when it does not close. */
function jsonValueEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === "\\") i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') {
      inString = true;
    } else if (ch === "{" || ch === "[") {
      depth++;
    } else if (ch === "}" || ch === "]") {
      if (--depth === 0) return i + 1;
    }
  }
  return -1;
}

function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function skipWhitespace(text: string, from: number): number {
  while (from < text.length && /\s/.test(text[from]!)) from++;
  return from;
}

function skipSeparators(text: string, from: number): number {
  while (from < text.length && /[\s,;]/.test(text[from]!)) from++;
  return from;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Streams a tool-enabled answer: plain text passes through as it arrives, text that may begin a tool
 * call is held back, and each call goes out as soon as it is complete (its JSON closed, and its
 * closing tag seen where the format has one). The emitted text plus finish().content equals
 * parseToolCalls(format, whole output).content, and the calls pushed plus finish().toolCalls its
 * calls, so a streamed answer reads the same as a buffered one.
 */
export class ToolCallStreamParser {
  private text = "";
  private emitted = 0;
  private callsEmitted = 0;
  /** Set once a call has (possibly) begun: from then on text waits for finish(). */
  private holding = false;

  constructor(private readonly format: ToolCallFormat) {}

  /** Adds generated text; returns the part that is certainly content, and the calls completed since the last push. */
  push(chunk: string): ParsedToolCalls {
    this.text += chunk;
    if (!this.holding) {
      const holdFrom = this.holdFrom();
      const content = this.text.slice(this.emitted, holdFrom);
      this.emitted = holdFrom;
      if (!this.holding) return { content, toolCalls: [] };
      return { content, toolCalls: this.settledCalls() };
    }
    return { content: "", toolCalls: this.settledCalls() };
  }

  /** The content not yet emitted and the calls not yet pushed, once generation ended. */
  finish(): ParsedToolCalls {
    const parsed = parseToolCalls(this.format, this.text);
    return { content: parsed.content.slice(this.emitted), toolCalls: parsed.toolCalls.slice(this.callsEmitted) };
  }

  /** Calls that later text cannot change, not pushed yet. */
  private settledCalls(): ToolCall[] {
    const parsed = parseSoFar(this.format, this.text);
    const calls = parsed.toolCalls.slice(this.callsEmitted, parsed.settled);
    this.callsEmitted += calls.length;
    return calls;
  }

  /** Where the text stops being safe to emit: a call start, a partial marker, or whitespace that may precede one. */
  private holdFrom(): number {
    const text = this.text;
    const first = text.trimStart()[0];
    if (first === undefined) return this.emitted; // only whitespace so far
    if (first === "{" || first === "[") {
      this.holding = true; // the answer may be a bare JSON call
      return this.emitted;
    }
    let holdAt = text.length;
    const markers = MARKERS[this.format];
    const complete = nextMarker(text, markers, this.emitted);
    if (complete) {
      this.holding = true;
      holdAt = complete.start;
    } else {
      holdAt = Math.min(holdAt, partialMarkerStart(text, markers));
    }
    while (holdAt > this.emitted && /\s/.test(text[holdAt - 1]!)) holdAt--;
    return holdAt;
  }
}

/** Start of the longest suffix of `text` that may be a marker arriving, or text.length. */
function partialMarkerStart(text: string, markers: readonly string[]): number {
  return Math.min(text.length, ...markers.map((marker) => text.length - partialSuffixLength(text, marker)));
}
