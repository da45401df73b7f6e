// The one validation entry point for request bodies of every API: a zod schema from
// `ollama.ts`, `openai.ts` (and any later API module) plus Ollama-style messages naming the field.
import { z } from "zod";
import { BadRequestError } from "./errors.js";

/** The issue text of a missing field; request schemas use it as their own message for empty required strings. */
export const REQUIRED = "required";

/** A schema's own message for a wrong value that keeps the usual one ("x is required") when the value is missing. */
export function orRequired(message: string) {
  return (issue: { input: unknown }) => (issue.input === undefined ? REQUIRED : message);
}

/** Field-naming messages ("invalid options.temperature: expected number"), in Ollama's style. */
function issueText(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case "invalid_union":
      return issue.input === undefined ? REQUIRED : "unexpected type";
    case "invalid_type":
      if (issue.input === undefined) return REQUIRED;
      return `expected ${issue.expected === "int" ? "integer" : issue.expected}`;
    case "too_big":
      return issue.origin === "array" || issue.origin === "string"
        ? `must have at most ${issue.maximum} ${issue.origin === "array" ? "items" : "characters"}`
        : `must be ${issue.inclusive ? "<=" : "<"} ${issue.maximum}`;
    case "too_small":
      if (issue.minimum === 1 && (issue.origin === "array" || issue.origin === "string")) return "must not be empty";
      return issue.origin === "array" || issue.origin === "string"
        ? `must have at least ${issue.minimum} ${issue.origin === "array" ? "items" : "characters"}`
        : `must be ${issue.inclusive ? ">=" : ">"} ${issue.minimum}`;
    case "invalid_value":
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    default:
      return undefined; // schema-specific messages (custom, union) or zod's own text
  }
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join(".");
  if (path === "") return issue.code === "invalid_type" ? "invalid request body: expected a JSON object" : issue.message;
  if (issue.message === REQUIRED) return `${path} is required`;
  return `invalid ${path}: ${issue.message}`;
}

/** Validates a request body; throws a BadRequestError naming the first offending field. */
export function parseRequest<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (body === undefined) throw new BadRequestError("missing request body");
  const result = schema.safeParse(body, { error: issueText });
  if (!result.success) throw new BadRequestError(formatIssue(result.error.issues[0]!));
  return result.data;
}
