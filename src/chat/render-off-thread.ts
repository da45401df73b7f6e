// Rendering a long conversation on a worker thread. A chat template renders in time about linear
// in the messages, but at the server's --max-messages default (4,096 short messages) that still
// held the JS thread, and every request of the server with it (/api/version too), measured
// 2026-12-02 on the shared 2-core machine (load 2-16): Qwen2.5's Jinja template 0.23-0.45 s,
// Llama 3.1's 0.35-0.40 s, ChatML 0.13-0.30 s, Ollama's Go templates for qwen2.5 and llama3.1
// 0.09-0.18 s; on a worker the JS thread's share (cloning the messages there, the text back) was
// 6-20 ms. Jinja templates that llama.cpp's chat library renders (tools: src/chat/chat-library.ts)
// already render on a libuv worker.
import { fromWorkerError, ThreadPool, workerScript } from "../util/thread-pool.js";
import type { RenderJob, RenderReply } from "./render-worker.js";
import type { ChatRenderOptions, ChatTemplate } from "./template.js";

/**
 * From this many messages a conversation renders on a worker. Shorter ones render here: under 64
 * short messages a render took 0.2-1.5 ms warmed (the same measurements), as much as the worker
 * path's own JS-thread share (0.1-1.5 ms), and the round trip added 0.1-0.6 ms of latency. The
 * text's length barely matters: one 8 MB message rendered in 0.2-2 ms (strings are joined, not copied).
 */
export const OFF_THREAD_MESSAGES = 64;

/** Long conversations arrive one per request, and more threads would take the model's cores. */
const RENDER_THREADS = 2;

let pool: ThreadPool | undefined;

/** `template` rendered over `options`: the same text as `template.render(options)`, off the JS thread for a long conversation. */
export async function renderChat(template: ChatTemplate, options: ChatRenderOptions): Promise<string> {
  if (options.messages.length < OFF_THREAD_MESSAGES) return template.render(options);
  pool ??= new ThreadPool(workerScript(import.meta.url, "render-worker"), RENDER_THREADS);
  const job: RenderJob = { source: template.source, options };
  const reply = (await pool.run(job)) as RenderReply;
  if ("error" in reply) throw fromWorkerError(reply.error);
  return reply.text;
}
