// A request body's bytes as JSON, as Express's JSON parser read them (strict: an object or array;
// an empty body is `{}`), with a 400 that says what is wrong; shared by the JS thread and the body
// worker (src/server/json-body-worker.ts).
import { BadRequestError } from "../api/errors.js";

/** UTF-8 (the only charset Ollama reads), with a leading BOM dropped as the parser's decoder did. */
const utf8 = new TextDecoder("utf-8");

export function parseJsonBody(bytes: Uint8Array): unknown {
  const text = utf8.decode(bytes);
  if (text.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BadRequestError(`invalid JSON body: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object") {
    throw new BadRequestError(`invalid JSON body: expected a JSON object, got ${value === null ? "null" : typeof value}`);
  }
  return value;
}
