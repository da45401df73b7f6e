// A worker for test/util/thread-pool.test.ts: answers each message with its thread's id.
import { parentPort, threadId } from "node:worker_threads";

parentPort!.on("message", () => parentPort!.postMessage(threadId));
