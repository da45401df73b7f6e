import { Environment, Interpreter, Template } from "@huggingface/jinja";
import { BadRequestError } from "../api/errors.js";
import type { ChatMessage } from "../api/ollama.js";
import type { Tool } from "../api/shared-fields.js";
import { GoTemplate, isGoTemplate, renderOllamaTemplate } from "./go-template.js";

/**
 * ChatML, used when a model carries no template of its own (llama.cpp and Ollama fall back to it too).
 * Renders `<|im_start|>role\ncontent<|im_end|>\n` per message, then the assistant header.
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{%- for message in messages %}" +
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}" +
  "{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

export interface ChatRenderOptions {
  messages: readonly ChatMessage[];
  tools?: readonly Tool[];
  /** End with the assistant header so the model answers. Jinja only: Ollama's Go templates always do. */
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
  /** Extra template variables (llama.cpp's chat_template_kwargs), e.g. `{ enable_thinking: false }`. */
  extra?: Record<string, unknown>;
  /** The request's `think`: Jinja gets `enable_thinking` (+ `reasoning_effort`), Go `.Think`/`.ThinkLevel`/`.IsThinkSet`. */
  think?: boolean | "low" | "medium" | "high" | "max";
  /** The multimodal runtime's media marker, put once per attached image before the message text (as Ollama's `[img-N]`). */
  imageMarker?: string;
  /** The clock behind `strftime_now`/`currentDate`; injectable so a render can be reproduced. */
  now?: Date;
}

export type TemplateKind = "jinja" | "go";

/** One compiled chat template: a model's Jinja template, an Ollama Go template, or the ChatML default. */
export class ChatTemplate {
  readonly source: string;
  readonly kind: TemplateKind;
  /** The template reads `tools` (Ollama: `.Tools`); Ollama refuses tools for models without it. */
  readonly supportsTools: boolean;
  private readonly jinja?: JinjaRenderer;
  private readonly go?: GoTemplate;

  constructor(source?: string | null) {
    this.source = source?.trim() ? source : DEFAULT_CHAT_TEMPLATE;
    if (isGoTemplate(this.source)) {
      this.kind = "go";
      this.go = new GoTemplate(this.source);
      this.supportsTools = this.go.referencesField("Tools");
    } else {
      this.kind = "jinja";
      this.jinja = new JinjaRenderer(this.source);
      this.supportsTools = this.jinja.referencesTools;
    }
  }

  /** Compiled templates by source: every request of a model renders with the same compiled program. */
  static cached(source?: string | null): ChatTemplate {
    const key = source ?? "";
    let template = compiledTemplates.get(key);
    if (template) {
      compiledTemplates.delete(key); // re-insert below: the Map's order is the recency order
    } else {
      template = new ChatTemplate(source);
    }
    compiledTemplates.set(key, template);
    if (compiledTemplates.size > MAX_CACHED_TEMPLATES) {
      compiledTemplates.delete(compiledTemplates.keys().next().value as string);
    }
    return template;
  }

  /** Whether a system message reaches the prompt; when not, render() merges it into the next message. */
  get supportsSystem(): boolean {
    return this.jinja ? this.jinja.capabilities.supportsSystem : true;
  }

  render(options: ChatRenderOptions): string {
    const rendering = { ...options, think: highestLevelForMax(options.think) };
    if (this.go) {
      return renderOllamaTemplate(this.go, { ...rendering, messages: withImageMarkers(options.messages, options.imageMarker) });
    }
    return this.jinja!.render(rendering);
  }
}

/**
 * `think: "max"` asks for the highest level the template has: the levelled templates in
 * llama.cpp's bundle (gpt-oss's `reasoning_effort`) and Ollama's (`.ThinkLevel`) stop at "high".
 */
function highestLevelForMax(think: ChatRenderOptions["think"]): ChatRenderOptions["think"] {
  return think === "max" ? "high" : think;
}

const MAX_CACHED_TEMPLATES = 32;
const compiledTemplates = new Map<string, ChatTemplate>();

const JINJA_CONSTANTS = { true: true, false: false, none: null, True: true, False: false, None: null };

/** Python's range(stop) / range(start, stop[, step]). */
function pythonRange(...args: unknown[]): number[] {
  const [start, stop, step] = (args.length === 1 ? [0, args[0], 1] : [args[0], args[1], args[2] ?? 1]) as number[];
  if (step === 0) throw new Error("range() arg 3 must not be zero");
  const out: number[] = [];
  for (let i = start!; step! > 0 ? i < stop! : i > stop!; i += step!) out.push(i);
  return out;
}

/** Thrown by the template's own `raise_exception(...)`: its message is meant for the user as is. */
class TemplateRaisedError extends Error {}

interface JinjaCapabilities {
  supportsSystem: boolean;
  /** Templates that print `arguments` as text want it as a JSON string, not an object (llama.cpp probes the same). */
  argumentsAsString: boolean;
}

interface TemplateToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: Record<string, unknown> | string };
}

interface TemplateMessage {
  role: string;
  content: string;
  reasoning_content?: string;
  thinking?: string;
  tool_calls?: TemplateToolCall[];
  name?: string;
  tool_call_id?: string;
}

class JinjaRenderer {
  private readonly template: Template;
  readonly referencesTools: boolean;
  private probed?: JinjaCapabilities;

  constructor(source: string) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new BadRequestError(`invalid chat template: ${errorMessage(err)}`);
    }
    this.referencesTools = containsIdentifier(this.template.parsed, "tools");
  }

  get capabilities(): JinjaCapabilities {
    this.probed ??= probeCapabilities(this);
    return this.probed;
  }

  render(options: ChatRenderOptions): string {
    const capabilities = this.capabilities;
    let messages = toTemplateMessages(withImageMarkers(options.messages, options.imageMarker), capabilities.argumentsAsString);
    if (!capabilities.supportsSystem) messages = mergeSystemIntoNext(messages);
    return this.renderRaw({
      messages,
      tools: options.tools?.length ? options.tools : undefined,
      addGenerationPrompt: options.addGenerationPrompt ?? true,
      bosToken: options.bosToken ?? "",
      eosToken: options.eosToken ?? "",
      extra: { ...thinkingVariables(options.think), ...options.extra },
      now: options.now,
    });
  }

  renderRaw(input: {
    messages: TemplateMessage[];
    tools?: readonly Tool[];
    addGenerationPrompt: boolean;
    bosToken: string;
    eosToken: string;
    extra?: Record<string, unknown>;
    now?: Date;
  }): string {
    const now = input.now ?? new Date();
    // Our own globals instead of Template.render's: its raise_exception and strftime_now cannot be replaced.
    const variables: Record<string, unknown> = {
      ...JINJA_CONSTANTS,
      range: pythonRange,
      raise_exception: (message: unknown) => {
        throw new TemplateRaisedError(String(message));
      },
      strftime_now: (format: unknown) => strftime(now, String(format)),
      ...input.extra,
      messages: input.messages,
      ...(input.tools ? { tools: input.tools } : {}),
      add_generation_prompt: input.addGenerationPrompt,
      bos_token: input.bosToken,
      eos_token: input.eosToken,
    };
    try {
      const env = new Environment();
      for (const [name, value] of Object.entries(variables)) env.set(name, value);
      return String(new Interpreter(env).run(this.template.parsed).value);
    } catch (err) {
      if (err instanceof TemplateRaisedError) throw new BadRequestError(err.message);
      throw new BadRequestError(`chat template error: ${errorMessage(err)}`);
    }
  }
}

function withImageMarkers(messages: readonly ChatMessage[], marker: string | undefined): readonly ChatMessage[] {
  if (!marker) return messages;
  return messages.map((message) =>
    message.images?.length ? { ...message, content: marker.repeat(message.images.length) + message.content } : message,
  );
}

/** Qwen3-style templates read `enable_thinking`, gpt-oss reads `reasoning_effort`. */
function thinkingVariables(think: ChatRenderOptions["think"]): Record<string, unknown> {
  if (think === undefined) return {};
  return typeof think === "string" ? { enable_thinking: true, reasoning_effort: think } : { enable_thinking: think };
}

/** Ollama's message shape -> the OpenAI/HF shape chat templates are written against. */
function toTemplateMessages(messages: readonly ChatMessage[], argumentsAsString: boolean): TemplateMessage[] {
  const callIds = new ToolCallIds();
  return messages.map((message) => {
    const out: TemplateMessage = { role: message.role, content: message.content };
    if (message.thinking) {
      // Qwen3/DeepSeek templates read `reasoning_content`, gpt-oss reads `thinking`.
      out.reasoning_content = message.thinking;
      out.thinking = message.thinking;
    }
    if (message.role === "assistant" && message.tool_calls?.length) {
      out.tool_calls = message.tool_calls.map((call) => ({
        id: callIds.issue(call.function.name),
        type: "function",
        function: {
          name: call.function.name,
          arguments: argumentsAsString ? JSON.stringify(call.function.arguments) : call.function.arguments,
        },
      }));
    }
    if (message.role === "tool") {
      const id = callIds.answer(message.tool_name);
      if (message.tool_name) out.name = message.tool_name;
      if (id) out.tool_call_id = id;
    }
    return out;
  });
}

/**
 * Ollama messages carry no call ids but templates (Mistral's) link a tool result to its call by id:
 * issue ids for calls and hand them to the results that follow, by tool name when given, else in order.
 * Ids are 9 alphanumerics, the length Mistral's template insists on.
 */
class ToolCallIds {
  private issued = 0;
  private pending: { id: string; name: string }[] = [];

  issue(name: string): string {
    const id = `call${String(++this.issued).padStart(5, "0")}`;
    this.pending.push({ id, name });
    return id;
  }

  answer(toolName: string | undefined): string | undefined {
    const byName = toolName ? this.pending.findIndex((call) => call.name === toolName) : -1;
    const [call] = this.pending.splice(byName >= 0 ? byName : 0, 1);
    return call?.id;
  }
}

/** What llama.cpp does for templates without a system role: prepend it to the next message. */
function mergeSystemIntoNext(messages: TemplateMessage[]): TemplateMessage[] {
  const [first, second, ...rest] = messages;
  if (first?.role !== "system") return messages;
  if (!second) return [];
  return [{ ...second, content: `${first.content}\n${second.content}` }, ...rest];
}

const PROBE_MARKER = "VLLAMA_PROBE_7f3a";

/** Render small probe conversations once per template to learn what it accepts (as llama.cpp's caps do). */
function probeCapabilities(renderer: JinjaRenderer): JinjaCapabilities {
  const probe = (messages: TemplateMessage[], tools?: Tool[]): string | undefined => {
    try {
      return renderer.renderRaw({ messages, tools, addGenerationPrompt: true, bosToken: "", eosToken: "" });
    } catch {
      return undefined;
    }
  };
  const systemConversation: TemplateMessage[] = [
    { role: "system", content: PROBE_MARKER },
    { role: "user", content: "Hi" },
  ];
  // Tool-use templates (Hermes' tool_use variant) only render with tools.
  const system = probe(systemConversation) ?? probe(systemConversation, [PROBE_TOOL]);
  const toolProbe = (args: Record<string, unknown> | string) => probe(toolConversation(args), [PROBE_TOOL]);
  const objectArgs = toolProbe({ arg: PROBE_MARKER });
  const argumentsAsString =
    !objectArgs?.includes(PROBE_MARKER) && !!toolProbe(JSON.stringify({ arg: PROBE_MARKER }))?.includes(PROBE_MARKER);
  return { supportsSystem: !!system?.includes(PROBE_MARKER), argumentsAsString };
}

const PROBE_TOOL: Tool = {
  type: "function",
  function: {
    name: "tool1",
    description: "Tool description",
    parameters: { type: "object", properties: { arg: { type: "string", description: "Arg description" } }, required: ["arg"] },
  },
};

function toolConversation(args: Record<string, unknown> | string): TemplateMessage[] {
  return [
    { role: "user", content: "User message" },
    {
      role: "assistant",
      content: "",
      tool_calls: [{ id: "call00001", type: "function", function: { name: "tool1", arguments: args } }],
    },
    { role: "tool", content: "Tool response", name: "tool1", tool_call_id: "call00001" },
    { role: "assistant", content: "Done" },
    { role: "user", content: "User message" },
  ];
}

/** Walks the parsed program (plain nested objects) for an `Identifier` node with that name. */
function containsIdentifier(node: unknown, name: string): boolean {
  if (Array.isArray(node)) return node.some((child) => containsIdentifier(child, name));
  if (node === null || typeof node !== "object") return false;
  const record = node as Record<string, unknown>;
  if (record.type === "Identifier" && record.value === name) return true;
  return Object.values(record).some((child) => containsIdentifier(child, name));
}

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** Python's strftime for the directives chat templates use, in the English (C) locale Python defaults to. */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  const hour12 = date.getHours() % 12 || 12;
  const directives: Record<string, () => string> = {
    Y: () => String(date.getFullYear()),
    y: () => pad(date.getFullYear() % 100),
    m: () => pad(date.getMonth() + 1),
    d: () => pad(date.getDate()),
    e: () => String(date.getDate()).padStart(2, " "),
    B: () => MONTHS[date.getMonth()]!,
    b: () => MONTHS[date.getMonth()]!.slice(0, 3),
    A: () => WEEKDAYS[date.getDay()]!,
    a: () => WEEKDAYS[date.getDay()]!.slice(0, 3),
    H: () => pad(date.getHours()),
    I: () => pad(hour12),
    M: () => pad(date.getMinutes()),
    S: () => pad(date.getSeconds()),
    p: () => (date.getHours() < 12 ? "AM" : "PM"),
    "%": () => "%",
  };
  return format.replace(/%(.)/g, (whole, directive: string) => directives[directive]?.() ?? whole);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
