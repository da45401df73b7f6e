// The body worker (src/server/json-body.ts): parses a large request body and runs the checks that
// read only the body, off the JS thread; answers each body's verdict in order, handing its bytes back.
import { parentPort, workerData } from "node:worker_threads";
import { parseJsonBody, verdictOf, type BodyReply, type BodyVerdict } from "./json-parse.js";
import { contentCheck, type ContentSettings } from "./request-checks.js";

const check = contentCheck(workerData as ContentSettings);

parentPort!.on("message", (bytes: Uint8Array) => {
  let verdict: BodyVerdict = null;
  try {
    check(parseJsonBody(bytes));
  } catch (err) {
    verdict = verdictOf(err);
  }
  const reply: BodyReply = { verdict, bytes };
  parentPort!.postMessage(reply, [bytes.buffer as ArrayBuffer]);
});
