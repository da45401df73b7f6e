// A few worker threads that answer one message at a time each, for CPU work that must not hold
// the JS thread (src/server/json-body.ts: parsing and checking large request bodies and WebSocket
// messages; src/chat/render-off-thread.ts: rendering long conversations). Workers start together
// on first use, keep the process alive only while they have jobs, and one that dies fails only
// its jobs. Started one by one as jobs overlapped, the second started in the first burst of
// concurrent requests and took the cores from the steps while it loaded (~140 ms of CPU built,
// ~530 ms under tsx): 32 requests on one image got their first token at p50 1.5-1.9 s in the
// first burst against 1.0-1.2 s after (CPU, llama110m-vision, 2026-12-02).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { VllamaError } from "../api/errors.js";

/** A typed error as data, as it crosses from a worker (a class does not survive postMessage). */
export interface WorkerError {
  message: string;
  status: number;
  code: string;
}

/** In a worker: what `task` threw, as data; anything but a VllamaError is a 500 naming the task. */
export function toWorkerError(err: unknown, task: string): WorkerError {
  if (err instanceof VllamaError) return { message: err.message, status: err.status, code: err.code };
  return { message: `${task} failed: ${err instanceof Error ? err.message : String(err)}`, status: 500, code: "internal" };
}

/** On the JS thread: the typed error a worker sent. */
export function fromWorkerError(error: WorkerError): VllamaError {
  return new VllamaError(error.message, error.status, error.code);
}

interface Job {
  resolve(reply: unknown): void;
  reject(error: unknown): void;
}

/** One worker and its jobs in flight, answered in the order they were posted. */
interface Thread {
  worker: Worker;
  jobs: Job[];
}

/**
 * The worker script `name` beside `moduleUrl`: its .js in the build. Run from source (.ts under
 * tsx), the worker registers tsx's hooks itself, as Node 20 does not pass `--import` hooks on to
 * workers (a .ts entry fails with ERR_UNKNOWN_FILE_EXTENSION).
 */
export function workerScript(moduleUrl: string, name: string): URL {
  const extension = path.extname(fileURLToPath(moduleUrl));
  const entry = new URL(`./${name}${extension}`, moduleUrl);
  if (extension !== ".ts") return entry;
  const tsx = import.meta.resolve("tsx/esm/api");
  const bootstrap = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(entry.href)});`;
  return new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`);
}

export class ThreadPool {
  private readonly threads: Thread[] = [];

  constructor(
    private readonly script: URL,
    private readonly size: number,
    private readonly workerData?: unknown,
  ) {}

  /** Posts `message` to the least busy worker (`transfer` moved, the rest copied); resolves with its reply. */
  run(message: unknown, transfer: ArrayBuffer[] = []): Promise<unknown> {
    const thread = this.pick();
    return new Promise((resolve, reject) => {
      thread.jobs.push({ resolve, reject });
      thread.worker.ref();
      thread.worker.postMessage(message, transfer);
    });
  }

  /** Stops every worker; their jobs in flight fail. */
  async close(): Promise<void> {
    await Promise.all(this.threads.splice(0).map((thread) => thread.worker.terminate()));
  }

  /** Workers started so far: none before the first job, then all of them. */
  get started(): number {
    return this.threads.length;
  }

  private pick(): Thread {
    if (this.threads.length === 0) for (let i = 0; i < this.size; i++) this.start();
    const idle = this.threads.find((thread) => thread.jobs.length === 0);
    if (idle) return idle;
    if (this.threads.length < this.size) return this.start();
    return this.threads.reduce((least, thread) => (thread.jobs.length < least.jobs.length ? thread : least));
  }

  private start(): Thread {
    const worker = new Worker(this.script, { workerData: this.workerData });
    const thread: Thread = { worker, jobs: [] };
    worker.on("message", (reply) => {
      thread.jobs.shift()?.resolve(reply);
      // Idle, it must not hold the process open (a 'message' listener refs the worker in Node 20).
      if (thread.jobs.length === 0) worker.unref();
    });
    const fail = (error: unknown) => {
      const index = this.threads.indexOf(thread);
      if (index >= 0) this.threads.splice(index, 1);
      for (const job of thread.jobs.splice(0)) job.reject(error);
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`worker thread exited (code ${code})`)));
    worker.unref(); // until it has a job (run)
    this.threads.push(thread);
    return thread;
  }
}
