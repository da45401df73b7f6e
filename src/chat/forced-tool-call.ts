// Forcing a tool call (Anthropic's tool_choice "any"/"tool", OpenAI's "required"/a named
// function): the answer is constrained to the JSON of a call, {"name": .., "arguments": {..}},
// the generic form that the tool-call parser reads in every format (src/chat/tool-calls.ts).
import type { Format } from "../api/ollama.js";
import type { Tool } from "../api/shared-fields.js";

/** The JSON schema of one call of any of `tools` (a grammar for the engine's `format`). */
export function forcedToolCallFormat(tools: readonly Tool[]): Format {
  const calls = tools.map((tool) => ({
    type: "object",
    properties: { name: { const: tool.function.name }, arguments: tool.function.parameters ?? { type: "object" } },
    required: ["name", "arguments"],
  }));
  return calls.length === 1 ? calls[0]! : { anyOf: calls };
}
