// The render worker (src/chat/render-off-thread.ts): renders a chat template over a long
// conversation off the JS thread, with the same compiled-template cache and code as the JS thread.
import { parentPort } from "node:worker_threads";
import { toWorkerError, type WorkerError } from "../util/thread-pool.js";
import { ChatTemplate, type ChatRenderOptions } from "./template.js";

/** A template by its source (compiled once per worker) and what to render with it. */
export interface RenderJob {
  source: string;
  options: ChatRenderOptions;
}

export type RenderReply = { text: string } | { error: WorkerError };

parentPort!.on("message", ({ source, options }: RenderJob) => {
  let reply: RenderReply;
  try {
    reply = { text: ChatTemplate.cached(source).render(options) };
  } catch (err) {
    reply = { error: toWorkerError(err, "rendering the chat template") };
  }
  parentPort!.postMessage(reply);
});
