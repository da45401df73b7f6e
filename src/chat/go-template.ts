import { BadRequestError } from "../api/errors.js";
import type { ChatMessage } from "../api/ollama.js";
import type { Tool } from "../api/shared-fields.js";

/**
 * A small interpreter for the Go text/template subset that Ollama's registry templates use:
 * `{{ .Field.Path }}`, `$var`, `:=`/`=`, `if`/`else if`/`else`, `range` (with `$i, $v :=`), `with`,
 * `end`, pipelines with `|`, parentheses, comments, `{{-`/`-}}` trimming, and the functions
 * `and or not eq ne lt le gt ge len index slice json currentDate`.
 * Fields resolve on plain JSON data: `.ToolCalls` finds `ToolCalls`, `toolCalls` or `tool_calls`.
 */

/** Ollama templates start their actions with a field, a variable or a Go keyword; Jinja ones do not. */
export function isGoTemplate(source: string): boolean {
  return !source.includes("{%") && /\{\{-?\s*(?:\.|\$|(?:if|range|with|end|else|block|define|template)\b)/.test(source);
}

type Operand =
  | { kind: "field"; base: Operand | { kind: "dot" } | { kind: "var"; name: string }; path: string[] }
  | { kind: "literal"; value: unknown }
  | { kind: "function"; name: string }
  | { kind: "pipe"; pipe: Pipeline };

interface Pipeline {
  declare?: { names: string[]; assign: boolean };
  commands: Operand[][];
}

type Node =
  | { kind: "text"; text: string }
  | { kind: "action"; pipe: Pipeline }
  | { kind: "if" | "with"; pipe: Pipeline; body: Node[]; elseBody: Node[] }
  | { kind: "range"; pipe: Pipeline; body: Node[]; elseBody: Node[] };

type Segment = { kind: "text"; text: string } | { kind: "action"; source: string };

export class GoTemplate {
  private readonly root: Node[];

  constructor(readonly source: string) {
    const parser = new SegmentParser(splitSegments(source));
    const { nodes, terminator } = parser.parseList();
    if (terminator) throw templateError(`unexpected {{${terminator.source}}}`);
    this.root = nodes;
  }

  /** Whether any action reads `.Name` (e.g. `Tools`, `Messages`) anywhere in the template. */
  referencesField(name: string): boolean {
    return new RegExp(`\\.${name}\\b`).test(this.source);
  }

  execute(data: Record<string, unknown>, options: { stopAfterResponse?: boolean; now?: Date } = {}): string {
    const nodes = options.stopAfterResponse ? truncateAfterResponse(this.root) : this.root;
    const run = new Execution(data, options.now ?? new Date());
    run.list(nodes, data, new Scope(undefined));
    return run.output;
  }
}

/** Ollama's Template.Execute: the `.Messages` form renders once; legacy `.Prompt`/`.Response` templates once per turn. */
export function renderOllamaTemplate(
  template: GoTemplate,
  input: { messages: readonly ChatMessage[]; tools?: readonly Tool[]; think?: boolean | string; now?: Date },
): string {
  const { system, messages } = collate(input.messages);
  if (template.referencesField("Messages")) {
    const think = { Think: Boolean(input.think), ThinkLevel: typeof input.think === "string" ? input.think : "", IsThinkSet: input.think !== undefined };
    return template.execute({ System: system, Messages: messages, Tools: input.tools ?? [], Response: "", ...think }, { now: input.now });
  }
  return renderLegacyTurns(template, messages, input.now);
}

/** Joins consecutive messages of one role, as Ollama does; all system texts together are `.System`. */
function collate(input: readonly ChatMessage[]): { system: string; messages: ChatMessage[] } {
  const systems: string[] = [];
  const messages: ChatMessage[] = [];
  for (const message of input) {
    if (message.role === "system") systems.push(message.content);
    const previous = messages.at(-1);
    if (previous?.role === message.role) {
      messages[messages.length - 1] = { ...previous, content: `${previous.content}\n\n${message.content}` };
    } else {
      messages.push({ ...message });
    }
  }
  return { system: systems.join("\n\n"), messages };
}

/** Each finished System/Prompt/Response turn in full; the open turn cut after `.Response` so the model continues there. */
function renderLegacyTurns(template: GoTemplate, messages: ChatMessage[], now: Date | undefined): string {
  let output = "";
  let turn = { System: "", Prompt: "", Response: "" };
  const flush = () => {
    output += template.execute(turn, { now });
    turn = { System: "", Prompt: "", Response: "" };
  };
  for (const message of messages) {
    if (message.role === "system") {
      if (turn.Prompt || turn.Response) flush();
      turn.System = message.content;
    } else if (message.role === "user") {
      if (turn.Response) flush();
      turn.Prompt = message.content;
    } else if (message.role === "assistant") {
      turn.Response = message.content;
    }
  }
  return output + template.execute(turn, { now, stopAfterResponse: true });
}

/** Ollama's deleteNode walk: keep everything up to the first action reading `.Response`, drop what follows. */
function truncateAfterResponse(nodes: Node[]): Node[] {
  let cut = false;
  const walk = (list: Node[]): Node[] => {
    const kept: Node[] = [];
    for (const node of list) {
      if (cut) break;
      if (node.kind === "action") {
        cut = pipeReadsField(node.pipe, "Response");
        kept.push(node);
      } else if (node.kind === "text") {
        kept.push(node);
      } else {
        // Like Ollama, only bodies are walked: a condition reading `.Response` does not cut.
        const body = walk(node.body);
        kept.push({ ...node, body, elseBody: walk(node.elseBody) });
      }
    }
    return kept;
  };
  return walk(nodes);
}

function pipeReadsField(pipe: Pipeline, name: string): boolean {
  const reads = (operand: Operand): boolean =>
    (operand.kind === "field" && (operand.path.includes(name) || (operand.base.kind === "pipe" && reads(operand.base)))) ||
    (operand.kind === "pipe" && pipeReadsField(operand.pipe, name));
  return pipe.commands.some((command) => command.some(reads));
}

/** Text and `{{ }}` actions, with `{{-`/`-}}` whitespace trimming applied and comments dropped. */
function splitSegments(source: string): Segment[] {
  const segments: Segment[] = [];
  let position = 0;
  let trimNextText = false;
  while (position <= source.length) {
    const open = source.indexOf("{{", position);
    let text = source.slice(position, open < 0 ? undefined : open);
    if (trimNextText) text = text.trimStart();
    if (open < 0) {
      if (text) segments.push({ kind: "text", text });
      break;
    }
    const close = findActionEnd(source, open + 2);
    let inner = source.slice(open + 2, close);
    if (/^-\s/.test(inner)) {
      text = text.trimEnd();
      inner = inner.slice(1);
    }
    trimNextText = /\s-$/.test(inner);
    if (trimNextText) inner = inner.slice(0, -1);
    if (text) segments.push({ kind: "text", text });
    inner = inner.trim();
    if (!(inner.startsWith("/*") && inner.endsWith("*/"))) segments.push({ kind: "action", source: inner });
    position = close + 2;
  }
  return segments;
}

/** The `}}` closing an action, skipping any inside string literals and comments. */
function findActionEnd(source: string, from: number): number {
  let i = from;
  while (i < source.length) {
    const ch = source[i];
    if (source.startsWith("}}", i)) return i;
    if (source.startsWith("/*", i)) {
      const end = source.indexOf("*/", i + 2);
      if (end < 0) break;
      i = end + 2;
    } else if (ch === '"' || ch === "`") {
      i = skipQuoted(source, i);
    } else {
      i++;
    }
  }
  throw templateError(`unclosed action starting at offset ${from - 2}`);
}

function skipQuoted(source: string, start: number): number {
  const quote = source[start];
  for (let i = start + 1; i < source.length; i++) {
    if (quote === '"' && source[i] === "\\") i++;
    else if (source[i] === quote) return i + 1;
  }
  throw templateError("unterminated string literal");
}

const TOKEN = /\s*(?:(:=|=|\(|\)|\||,)|("(?:[^"\\]|\\.)*"|`[^`]*`)|(-?\d+(?:\.\d+)?)|(\$\w*)((?:\.\w+)*)|((?:\.\w+)+|\.)|([A-Za-z_]\w*))/y;

type Token =
  | { kind: "punct"; value: string }
  | { kind: "literal"; value: unknown }
  | { kind: "var"; name: string; path: string[] }
  | { kind: "field"; path: string[] }
  | { kind: "ident"; name: string };

function tokenize(action: string): Token[] {
  const tokens: Token[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < action.length) {
    const start = TOKEN.lastIndex;
    const match = TOKEN.exec(action);
    if (!match) {
      if (!action.slice(start).trim()) break;
      throw templateError(`unexpected "${action.slice(start).trim()}" in {{${action}}}`);
    }
    const [, punct, str, num, variable, varPath, field, ident] = match;
    if (punct) tokens.push({ kind: "punct", value: punct });
    else if (str) tokens.push({ kind: "literal", value: str.startsWith("`") ? str.slice(1, -1) : JSON.parse(str) });
    else if (num) tokens.push({ kind: "literal", value: Number(num) });
    else if (variable) tokens.push({ kind: "var", name: variable, path: splitPath(varPath ?? "") });
    else if (field) tokens.push({ kind: "field", path: splitPath(field) });
    else if (ident) tokens.push(keywordLiteral(ident) ?? { kind: "ident", name: ident });
  }
  return tokens;
}

function splitPath(path: string): string[] {
  return path.split(".").filter(Boolean);
}

function keywordLiteral(name: string): Token | undefined {
  if (name === "true" || name === "false") return { kind: "literal", value: name === "true" };
  if (name === "nil") return { kind: "literal", value: null };
  return undefined;
}

interface Terminator {
  keyword: "end" | "else";
  source: string;
  /** For `else if ...` / `else with ...`: the tokens after `else`. */
  rest: Token[];
}

class SegmentParser {
  private index = 0;

  constructor(private readonly segments: Segment[]) {}

  /** Nodes up to the next `{{ end }}`/`{{ else }}` (returned as the terminator) or the end of input. */
  parseList(): { nodes: Node[]; terminator?: Terminator } {
    const nodes: Node[] = [];
    while (this.index < this.segments.length) {
      const segment = this.segments[this.index++]!;
      if (segment.kind === "text") {
        nodes.push(segment);
        continue;
      }
      const tokens = tokenize(segment.source);
      const head = tokens[0];
      const keyword = head?.kind === "ident" ? head.name : undefined;
      if (keyword === "end" || keyword === "else") return { nodes, terminator: { keyword, source: segment.source, rest: tokens.slice(1) } };
      if (keyword === "if" || keyword === "with" || keyword === "range") {
        nodes.push(this.parseBlock(keyword, tokens.slice(1), segment.source));
      } else if (keyword === "define" || keyword === "template" || keyword === "block" || keyword === "break" || keyword === "continue") {
        throw templateError(`{{${keyword}}} is not supported`);
      } else {
        nodes.push({ kind: "action", pipe: parsePipeline(tokens, segment.source) });
      }
    }
    return { nodes };
  }

  private parseBlock(kind: "if" | "with" | "range", tokens: Token[], source: string): Node {
    const pipe = parsePipeline(tokens, source);
    const body = this.parseList();
    let elseBody: Node[] = [];
    let terminator = body.terminator;
    if (terminator?.keyword === "else") {
      const chained = terminator.rest[0];
      if (chained?.kind === "ident" && (chained.name === "if" || chained.name === "with")) {
        // `else if` shares the outer `end`: it is an `if` nested in the else branch.
        return { kind, pipe, body: body.nodes, elseBody: [this.parseBlock(chained.name, terminator.rest.slice(1), terminator.source)] };
      }
      const rest = this.parseList();
      elseBody = rest.nodes;
      terminator = rest.terminator;
    }
    if (terminator?.keyword !== "end") throw templateError(`missing {{end}} for {{${source}}}`);
    return { kind, pipe, body: body.nodes, elseBody };
  }
}

function parsePipeline(tokens: Token[], source: string): Pipeline {
  let rest = tokens;
  let declare: Pipeline["declare"];
  const assignAt = rest.findIndex((t) => t.kind === "punct" && (t.value === ":=" || t.value === "="));
  if (assignAt > 0 && rest.slice(0, assignAt).every((t) => t.kind === "var" || (t.kind === "punct" && t.value === ","))) {
    const names = rest.slice(0, assignAt).flatMap((t) => (t.kind === "var" ? [t.name] : []));
    declare = { names, assign: (rest[assignAt] as { value: string }).value === "=" };
    rest = rest.slice(assignAt + 1);
  }
  const cursor = { tokens: rest, index: 0 };
  const pipe = { declare, commands: parseCommands(cursor, source) };
  if (cursor.index < rest.length) throw templateError(`unexpected ")" in {{${source}}}`);
  return pipe;
}

function parseCommands(cursor: { tokens: Token[]; index: number }, source: string): Operand[][] {
  const commands: Operand[][] = [[]];
  while (cursor.index < cursor.tokens.length) {
    const token = cursor.tokens[cursor.index]!;
    if (token.kind === "punct" && token.value === ")") break;
    cursor.index++;
    if (token.kind === "punct" && token.value === "|") {
      commands.push([]);
      continue;
    }
    commands.at(-1)!.push(parseOperand(token, cursor, source));
  }
  if (commands.some((command) => command.length === 0)) throw templateError(`missing value in {{${source}}}`);
  return commands;
}

function parseOperand(token: Token, cursor: { tokens: Token[]; index: number }, source: string): Operand {
  switch (token.kind) {
    case "literal":
      return { kind: "literal", value: token.value };
    case "ident":
      return { kind: "function", name: token.name };
    case "field":
      return { kind: "field", base: { kind: "dot" }, path: token.path };
    case "var":
      return { kind: "field", base: { kind: "var", name: token.name }, path: token.path };
    case "punct": {
      if (token.value !== "(") throw templateError(`unexpected "${token.value}" in {{${source}}}`);
      const pipe: Pipeline = { commands: parseCommands(cursor, source) };
      if (cursor.tokens[cursor.index++]?.kind !== "punct") throw templateError(`unclosed "(" in {{${source}}}`);
      const next = cursor.tokens[cursor.index];
      if (next?.kind === "field") {
        cursor.index++; // (pipeline).Field
        return { kind: "field", base: { kind: "pipe", pipe }, path: next.path };
      }
      return { kind: "pipe", pipe };
    }
  }
}

class Scope {
  private readonly vars = new Map<string, unknown>();
  constructor(private readonly parent: Scope | undefined) {}

  declare(name: string, value: unknown): void {
    this.vars.set(name, value);
  }

  assign(name: string, value: unknown): void {
    if (this.vars.has(name)) this.vars.set(name, value);
    else if (this.parent) this.parent.assign(name, value);
    else throw templateError(`undefined variable: ${name}`);
  }

  lookup(name: string): unknown {
    if (this.vars.has(name)) return this.vars.get(name);
    if (this.parent) return this.parent.lookup(name);
    throw templateError(`undefined variable: ${name}`);
  }
}

class Execution {
  output = "";
  private readonly functions: Record<string, (...args: unknown[]) => unknown>;

  constructor(private readonly root: unknown, now: Date) {
    this.functions = {
      and: (...args) => args.find((a) => !truthy(a)) ?? args.at(-1),
      or: (...args) => args.find(truthy) ?? args.at(-1),
      not: (a) => !truthy(a),
      eq: (a, ...others) => others.some((b) => a === b),
      ne: (a, b) => a !== b,
      lt: (a, b) => (a as number) < (b as number),
      le: (a, b) => (a as number) <= (b as number),
      gt: (a, b) => (a as number) > (b as number),
      ge: (a, b) => (a as number) >= (b as number),
      len: (a) => lengthOf(a),
      index: (a, ...keys) => keys.reduce((value, key) => (value as Record<string, unknown> | undefined)?.[key as string], a),
      slice: (a, start, end) => (a as unknown[] | string).slice(start as number, end as number | undefined),
      json: (a) => JSON.stringify(a ?? null),
      currentDate: () => now.toISOString().slice(0, 10),
    };
  }

  list(nodes: Node[], dot: unknown, scope: Scope): void {
    for (const node of nodes) this.node(node, dot, scope);
  }

  private node(node: Node, dot: unknown, scope: Scope): void {
    switch (node.kind) {
      case "text":
        this.output += node.text;
        return;
      case "action": {
        const value = this.pipeline(node.pipe, dot, scope);
        if (!node.pipe.declare) this.output += printed(value);
        return;
      }
      case "if":
      case "with": {
        const inner = new Scope(scope);
        const value = this.pipeline(node.pipe, dot, inner);
        if (truthy(value)) this.list(node.body, node.kind === "with" ? value : dot, inner);
        else this.list(node.elseBody, dot, inner);
        return;
      }
      case "range":
        this.range(node, dot, scope);
    }
  }

  private range(node: Extract<Node, { kind: "range" }>, dot: unknown, scope: Scope): void {
    const { declare, commands } = node.pipe;
    const collection = this.pipeline({ commands }, dot, scope);
    const entries: [unknown, unknown][] = Array.isArray(collection)
      ? collection.map((item, i) => [i, item])
      : isRecord(collection)
        ? Object.keys(collection).sort().map((key) => [key, collection[key]]) // Go ranges maps in key order
        : [];
    if (entries.length === 0) {
      this.list(node.elseBody, dot, new Scope(scope));
      return;
    }
    for (const [key, item] of entries) {
      const inner = new Scope(scope);
      const names = declare?.names ?? [];
      if (names.length === 1) inner.declare(names[0]!, item);
      if (names.length === 2) {
        inner.declare(names[0]!, key);
        inner.declare(names[1]!, item);
      }
      this.list(node.body, item, inner);
    }
  }

  private pipeline(pipe: Pipeline, dot: unknown, scope: Scope): unknown {
    let value: unknown;
    pipe.commands.forEach((command, i) => {
      value = this.command(command, dot, scope, i === 0 ? [] : [value]);
    });
    for (const name of pipe.declare?.names ?? []) {
      if (pipe.declare!.assign) scope.assign(name, value);
      else scope.declare(name, value);
    }
    return value;
  }

  /** `piped` is the previous command's result, passed as the last argument (`x | f a` is `f a x`). */
  private command(command: Operand[], dot: unknown, scope: Scope, piped: unknown[]): unknown {
    const [head, ...args] = command;
    if (head!.kind === "function") {
      const fn = this.functions[head!.name];
      if (!fn) throw templateError(`function "${head!.name}" not defined`);
      return fn(...args.map((arg) => this.operand(arg, dot, scope)), ...piped);
    }
    if (args.length > 0 || piped.length > 0) throw templateError("can't give arguments to a non-function");
    return this.operand(head!, dot, scope);
  }

  private operand(operand: Operand, dot: unknown, scope: Scope): unknown {
    switch (operand.kind) {
      case "literal":
        return operand.value;
      case "function":
        return this.command([operand], dot, scope, []);
      case "pipe":
        return this.pipeline(operand.pipe, dot, scope);
      case "field": {
        const base = operand.base;
        const start =
          base.kind === "dot" ? dot : base.kind === "var" ? (base.name === "$" ? this.root : scope.lookup(base.name)) : this.operand(base, dot, scope);
        return operand.path.reduce(fieldOf, start);
      }
    }
  }
}

/** Go's exported field names on JSON data: `ToolCalls` -> `ToolCalls` | `toolCalls` | `tool_calls`. */
function fieldOf(value: unknown, name: string): unknown {
  if (!isRecord(value)) return undefined;
  const camel = name[0]!.toLowerCase() + name.slice(1);
  const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return [name, camel, snake].map((key) => value[key]).find((v) => v !== undefined);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function lengthOf(value: unknown): number {
  if (typeof value === "string" || Array.isArray(value)) return value.length;
  if (isRecord(value)) return Object.keys(value).length;
  throw templateError(`len of ${value === undefined ? "nil" : typeof value}`);
}

/** Go's truth: false, 0, nil and empty strings, slices and maps are false. */
function truthy(value: unknown): boolean {
  if (Array.isArray(value) || typeof value === "string") return value.length > 0;
  if (isRecord(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

/** Ollama's tool, tool-call and argument types print as JSON; missing values print as nothing. */
function printed(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function templateError(message: string): BadRequestError {
  return new BadRequestError(`template: ${message}`);
}
