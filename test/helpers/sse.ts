// Streams whose SSE frames are each an `event:` line naming the data's `type` and a `data:` line
// (Anthropic's Messages, OpenAI's Responses).
import assert from "node:assert/strict";

/** The events of a raw stream, each parsed by the API's event schema and checked to be named by its type. */
export function parseNamedEvents<T extends { type: string }>(text: string, schema: { parse(data: unknown): T }): T[] {
  return text
    .split("\n\n")
    .filter(Boolean)
    .map((frame) => {
      const [eventLine, dataLine] = frame.split("\n");
      const event = schema.parse(JSON.parse(dataLine!.replace(/^data: /, "")));
      assert.equal(eventLine, `event: ${event.type}`);
      return event;
    });
}
