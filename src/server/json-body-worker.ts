// The body worker (src/server/json-body.ts): parses a large request body or WebSocket message and
// runs the checks that read only it, off the JS thread; answers each one's verdict in order,
// handing its bytes back.
import { parentPort, workerData } from "node:worker_threads";
import { toWorkerError, type WorkerError } from "../util/thread-pool.js";
import { parseJsonBody } from "./json-parse.js";
import { contentCheck, type ContentSettings } from "./request-checks.js";
import { envelopeOf, idOf, parseMessage, type RequestId } from "./ws-message.js";

/** An HTTP request body, or a WebSocket message (its envelope read first, as src/server/ws.ts reads it). */
export interface BodyJob {
  kind: "body" | "message";
  bytes: Uint8Array;
}

/** The verdict: `error` null when it passed; a message's id, for its error; its bytes handed back. */
export interface BodyReply {
  error: WorkerError | null;
  id: RequestId | null;
  bytes: Uint8Array;
}

const check = contentCheck(workerData as ContentSettings);

parentPort!.on("message", ({ kind, bytes }: BodyJob) => {
  let id: RequestId | null = null;
  let error: WorkerError | null = null;
  try {
    if (kind === "body") {
      check(parseJsonBody(bytes));
    } else {
      const message = parseMessage(bytes);
      id = idOf(message);
      const { type, body } = envelopeOf(message);
      if (type !== "cancel") check(body);
    }
  } catch (err) {
    error = toWorkerError(err, "checking the request body");
  }
  const reply: BodyReply = { error, id, bytes };
  parentPort!.postMessage(reply, [bytes.buffer as ArrayBuffer]);
});
