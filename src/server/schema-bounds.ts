// The JSON schemas a request body brings, wherever its API puts them, held to the bounds of
// src/engine/json-schema-check.ts before any work. The engine checks what reaches it too; checked
// here as well, a large body's schemas are refused on a worker thread with the rest of its checks
// (src/server/json-body.ts) instead of after parsing and validation on the JS thread, which a
// 10,000-long `$ref` chain held some 30 ms a request (2026-12-02).
import { checkJsonSchema } from "../engine/json-schema-check.js";

/** Where each API puts a response's schema: Ollama, OpenAI chat and completions, Responses, Anthropic. */
const FORMAT_PATHS = [["format"], ["response_format", "json_schema", "schema"], ["text", "format", "schema"], ["output_config", "format", "schema"]];
/** Where a tool's parameters are: Ollama and OpenAI chat, Responses, Anthropic. */
const TOOL_PATHS = [["function", "parameters"], ["parameters"], ["input_schema"]];

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function at(value: unknown, keys: string[]): unknown {
  return keys.reduce<unknown>((node, key) => (isObject(node) ? node[key] : undefined), value);
}

/** Throws BadRequestError naming the field of the first schema in `body` that is out of bounds. */
export function checkSchemaBounds(body: Record<string, unknown>): void {
  const check = (schema: unknown, what: string) => {
    if (isObject(schema)) checkJsonSchema(schema, what);
  };
  for (const keys of FORMAT_PATHS) check(at(body, keys), keys.join("."));
  if (!Array.isArray(body.tools)) return;
  body.tools.forEach((tool, i) => {
    for (const keys of TOOL_PATHS) check(at(tool, keys), `tools[${i}].${keys.join(".")}`);
  });
}
