// A WebSocket message's envelope (src/server/ws.ts): its JSON, `id` and `type`. Read on the JS
// thread for a small message and on a body worker first for a large one (src/server/json-body.ts),
// with the same errors either way.
import { z } from "zod";
import { BadRequestError } from "../api/errors.js";
import { parseRequest } from "../api/validate.js";

export const RequestIdSchema = z.union([z.string().min(1).max(128), z.int()]);
export type RequestId = z.infer<typeof RequestIdSchema>;

const MessageSchema = z.looseObject({
  id: RequestIdSchema,
  type: z.enum(["generate", "chat", "embed", "cancel"]),
});

/** A text message's JSON (the socket checked it is UTF-8). */
export function parseMessage(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"));
  } catch (err) {
    throw new BadRequestError(`invalid JSON message: ${(err as Error).message}`);
  }
}

/** The message's id and type, and the request body beside them. */
export function envelopeOf(message: unknown) {
  const { id, type, ...body } = parseRequest(MessageSchema, message);
  return { id, type, body };
}

/** The id of a message that failed validation, when it has a usable one. */
export function idOf(message: unknown): RequestId | null {
  const id = RequestIdSchema.safeParse((message as { id?: unknown } | null)?.id);
  return id.success ? id.data : null;
}
