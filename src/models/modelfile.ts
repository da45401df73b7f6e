import { BadRequestError, NotImplementedError } from "../api/errors.js";
import { ChatRoleSchema, type ChatMessage } from "../api/ollama.js";
import type { ModelParameters } from "./types.js";

/** A parsed Modelfile. `license` may repeat, as in Ollama. */
export interface Modelfile {
  /** Each FROM line, in order: a model, a GGUF file or a folder; a vision model's projector is a second FROM. */
  from: string[];
  template?: string;
  system?: string;
  parameters: ModelParameters;
  messages: ChatMessage[];
  license: string[];
}

type ParameterType = "int" | "float" | "bool" | "strings";

// The parameters Ollama's Modelfile accepts (api.Options and api.Runner), with their types.
const PARAMETER_TYPES: Record<string, ParameterType> = {
  num_keep: "int",
  seed: "int",
  num_predict: "int",
  top_k: "int",
  top_p: "float",
  min_p: "float",
  typical_p: "float",
  repeat_last_n: "int",
  temperature: "float",
  repeat_penalty: "float",
  presence_penalty: "float",
  frequency_penalty: "float",
  stop: "strings",
  num_ctx: "int",
  num_batch: "int",
  num_gpu: "int",
  main_gpu: "int",
  use_mmap: "bool",
  num_thread: "int",
};

/** A Modelfile MESSAGE has no tool turns. */
const MESSAGE_ROLES = ChatRoleSchema.exclude(["tool"]);

function parameterType(name: string): ParameterType {
  const type = PARAMETER_TYPES[name];
  if (!type) throw new BadRequestError(`unknown parameter '${name}'`);
  return type;
}

function invalidValue(name: string, value: unknown, expected: string): BadRequestError {
  return new BadRequestError(`invalid value for parameter '${name}': ${JSON.stringify(value)} is not ${expected}`);
}

/** Parses a parameter value written as text (a Modelfile line, or a string in JSON). */
function parseParameterText(name: string, type: ParameterType, text: string): number | boolean | string {
  switch (type) {
    case "int":
      if (!/^[+-]?\d+$/.test(text.trim())) throw invalidValue(name, text, "an integer");
      return Number(text);
    case "float": {
      const value = Number(text);
      if (text.trim() === "" || !Number.isFinite(value)) throw invalidValue(name, text, "a number");
      return value;
    }
    case "bool":
      if (!/^(true|false)$/i.test(text.trim())) throw invalidValue(name, text, "true or false");
      return text.trim().toLowerCase() === "true";
    case "strings":
      return text;
  }
}

/**
 * Adds one parameter to `params` with Ollama's typing: numbers and booleans parsed, `stop`
 * accumulated into a list. Accepts text (Modelfile) or JSON values (/api/create).
 */
export function addParameter(params: ModelParameters, name: string, value: unknown): void {
  const key = name.toLowerCase();
  const type = parameterType(key);
  if (type === "strings") {
    const values = Array.isArray(value) ? value : [value];
    if (!values.every((v) => typeof v === "string")) throw invalidValue(key, value, "a string or a list of strings");
    const existing = params[key];
    params[key] = [...(Array.isArray(existing) ? existing : []), ...(values as string[])];
    return;
  }
  if (typeof value === "string") {
    params[key] = parseParameterText(key, type, value);
    return;
  }
  const ok =
    (type === "int" && Number.isInteger(value)) ||
    (type === "float" && typeof value === "number" && Number.isFinite(value)) ||
    (type === "bool" && typeof value === "boolean");
  if (!ok) throw invalidValue(key, value, type === "bool" ? "true or false" : type === "int" ? "an integer" : "a number");
  params[key] = value as number | boolean;
}

/** Validates and types a JSON `parameters` object from an /api/create request. */
export function typeParameters(raw: Record<string, unknown>): ModelParameters {
  const params: ModelParameters = {};
  for (const [name, value] of Object.entries(raw)) addParameter(params, name, value);
  return params;
}

/** A cursor over Modelfile text; each `read*` consumes what it returns. */
class Scanner {
  private pos = 0;
  line = 1;

  constructor(private readonly text: string) {}

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  /** Skips blank lines, whitespace and `#` comment lines. */
  skipBlankAndComments(): void {
    while (!this.atEnd()) {
      const ch = this.text[this.pos]!;
      if (ch === "#") this.restOfLine();
      else if (/\s/.test(ch)) this.advance(1);
      else return;
    }
  }

  /** Reads a word (a command, parameter name or role); spaces and tabs after it are skipped. */
  readWord(): string {
    const match = /^[^\s]+/.exec(this.text.slice(this.pos));
    const word = match ? match[0] : "";
    this.advance(word.length);
    this.skipSpaces();
    return word;
  }

  /** Reads an argument: `"""multi-line"""`, `"quoted"` with \" \\ \n escapes, or the rest of the line. */
  readValue(what: string): string {
    const rest = this.text.slice(this.pos);
    let value: string;
    if (rest.startsWith('"""')) {
      const end = rest.indexOf('"""', 3);
      if (end < 0) throw this.error(`unterminated """ in ${what}`);
      value = rest.slice(3, end);
      this.advance(end + 3);
    } else if (rest.startsWith('"')) {
      const match = /^"((?:[^"\\\n]|\\.)*)"/.exec(rest);
      if (!match) throw this.error(`unterminated " in ${what}`);
      value = match[1]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      this.advance(match[0].length);
    } else {
      value = this.restOfLine().trim();
      if (value === "") throw this.error(`missing value for ${what}`);
      return value;
    }
    if (this.restOfLine().trim() !== "") throw this.error(`unexpected text after the closing quote of ${what}`);
    return value;
  }

  error(message: string): BadRequestError {
    return new BadRequestError(`Modelfile line ${this.line}: ${message}`);
  }

  private restOfLine(): string {
    const end = this.text.indexOf("\n", this.pos);
    const stop = end < 0 ? this.text.length : end;
    const text = this.text.slice(this.pos, stop);
    this.advance(stop - this.pos);
    return text;
  }

  private skipSpaces(): void {
    while (!this.atEnd() && (this.text[this.pos] === " " || this.text[this.pos] === "\t")) this.advance(1);
  }

  private advance(count: number): void {
    for (let i = 0; i < count; i++) if (this.text[this.pos + i] === "\n") this.line++;
    this.pos += count;
  }
}

/** Parses Modelfile text. Errors are BadRequestError with the line number. */
export function parseModelfile(text: string): Modelfile {
  const scanner = new Scanner(text);
  const file: Modelfile = { from: [], parameters: {}, messages: [], license: [] };
  for (scanner.skipBlankAndComments(); !scanner.atEnd(); scanner.skipBlankAndComments()) {
    const command = scanner.readWord().toUpperCase();
    switch (command) {
      case "FROM":
        file.from.push(scanner.readValue("FROM"));
        break;
      case "TEMPLATE":
        file.template = scanner.readValue("TEMPLATE");
        break;
      case "SYSTEM":
        file.system = scanner.readValue("SYSTEM");
        break;
      case "LICENSE":
        file.license.push(scanner.readValue("LICENSE"));
        break;
      case "PARAMETER": {
        const name = scanner.readWord();
        if (!name) throw scanner.error("PARAMETER needs a name and a value");
        const value = scanner.readValue(`PARAMETER ${name}`);
        try {
          addParameter(file.parameters, name, value);
        } catch (err) {
          throw scanner.error((err as Error).message);
        }
        break;
      }
      case "MESSAGE": {
        const word = scanner.readWord().toLowerCase();
        const role = MESSAGE_ROLES.safeParse(word);
        if (!role.success) throw scanner.error(`MESSAGE role must be one of "system", "user", or "assistant", not '${word}'`);
        file.messages.push({ role: role.data, content: scanner.readValue("MESSAGE") });
        break;
      }
      case "ADAPTER":
        throw new NotImplementedError("ADAPTER is not supported by vllama");
      default:
        throw scanner.error(
          `unknown command '${command}'; expected FROM, TEMPLATE, SYSTEM, PARAMETER, MESSAGE, LICENSE or ADAPTER`,
        );
    }
  }
  if (file.from.length === 0) throw new BadRequestError("Modelfile has no FROM line");
  return file;
}

/** Quotes a value as `"""..."""`, or as an escaped `"..."` when triple quotes cannot hold it. */
function tripleQuoted(value: string): string {
  if (!value.includes('"""') && !value.endsWith('"')) return `"""${value}"""`;
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

/** Writes a value bare when parseModelfile reads it back unchanged, quoted otherwise. */
function quoteValue(value: string): string {
  const isBareSafe = value !== "" && value === value.trim() && !/["\n]/.test(value);
  return isBareSafe ? value : tripleQuoted(value);
}

/** Renders a Modelfile back to text; parseModelfile(renderModelfile(m)) equals m. */
export function renderModelfile(file: Modelfile): string {
  const lines = file.from.map((from) => `FROM ${quoteValue(from)}`);
  if (file.template !== undefined) lines.push(`TEMPLATE ${tripleQuoted(file.template)}`);
  if (file.system !== undefined) lines.push(`SYSTEM ${tripleQuoted(file.system)}`);
  for (const [name, value] of Object.entries(file.parameters)) {
    for (const item of Array.isArray(value) ? value : [value]) lines.push(`PARAMETER ${name} ${quoteValue(String(item))}`);
  }
  for (const message of file.messages) lines.push(`MESSAGE ${message.role} ${quoteValue(message.content)}`);
  for (const license of file.license) lines.push(`LICENSE ${tripleQuoted(license)}`);
  return lines.join("\n") + "\n";
}

/** The `parameters` text of /api/show: one `name  value` line per value, as Ollama prints it. */
export function formatParametersText(params: ModelParameters): string {
  const lines: string[] = [];
  for (const [name, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      lines.push(`${name.padEnd(30)} ${typeof item === "string" ? JSON.stringify(item) : String(item)}`);
    }
  }
  return lines.join("\n");
}
