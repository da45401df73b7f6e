// Operator limits on the prompt one request may bring, checked on the parsed body before any
// work: a chat template renders on the JS thread in time linear in the messages, and 16,000
// one-word messages used to hold it 5 s (issue 13, finding 3). Too many messages is a 400, too
// much text a 413.
import { BadRequestError, PayloadTooLargeError } from "../api/errors.js";
import { bodyLimitBytes } from "./connection-limits.js";

/** The request fields a prompt is made of, across the Ollama, OpenAI and Anthropic APIs. */
const PROMPT_FIELDS = ["messages", "prompt", "input", "system", "suffix", "content", "instructions", "tools"] as const;

/** Throws when a request body brings more messages or prompt text than the operator allows. */
export function promptLimitCheck(maxMessages: number, promptLimit: string): (body: unknown) => void {
  const maxBytes = bodyLimitBytes(promptLimit);
  return (body) => {
    if (body === null || typeof body !== "object" || Array.isArray(body)) return;
    const fields = body as Record<string, unknown>;
    const messages = conversationLength(fields);
    if (messages > maxMessages) {
      throw new BadRequestError(`too many messages: ${messages}, this server takes at most ${maxMessages} in one request`);
    }
    const bytes = PROMPT_FIELDS.reduce((sum, field) => sum + textBytes(fields[field]), 0);
    if (bytes > maxBytes) throw new PayloadTooLargeError(`prompt too large: ${bytes} bytes of text, this server takes at most ${maxBytes}`);
  };
}

/** Chat messages, or the Responses API's input items (objects; an embedding batch's inputs are strings). */
function conversationLength(fields: Record<string, unknown>): number {
  if (Array.isArray(fields.messages)) return fields.messages.length;
  if (Array.isArray(fields.input) && fields.input.some((item) => item !== null && typeof item === "object" && !Array.isArray(item))) {
    return fields.input.length;
  }
  return 0;
}

/** UTF-8 bytes of every string in a JSON value (object keys excluded); iterative, as a body may nest deeper than the stack. */
function textBytes(value: unknown): number {
  let sum = 0;
  const pending = [value];
  while (pending.length > 0) {
    const item = pending.pop();
    if (typeof item === "string") sum += Buffer.byteLength(item);
    else if (item !== null && typeof item === "object") for (const child of Array.isArray(item) ? item : Object.values(item)) pending.push(child);
  }
  return sum;
}
