// A few worker threads that answer one message at a time each, for CPU work that must not hold
// the JS thread (src/server/json-body.ts: parsing and checking large request bodies). Workers
// start on first use, do not keep the process alive, and one that dies fails only its jobs.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";

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
      thread.worker.postMessage(message, transfer);
    });
  }

  /** Stops every worker; their jobs in flight fail. */
  async close(): Promise<void> {
    await Promise.all(this.threads.splice(0).map((thread) => thread.worker.terminate()));
  }

  private pick(): Thread {
    const idle = this.threads.find((thread) => thread.jobs.length === 0);
    if (idle) return idle;
    if (this.threads.length < this.size) return this.start();
    return this.threads.reduce((least, thread) => (thread.jobs.length < least.jobs.length ? thread : least));
  }

  private start(): Thread {
    const worker = new Worker(this.script, { workerData: this.workerData });
    worker.unref();
    const thread: Thread = { worker, jobs: [] };
    worker.on("message", (reply) => thread.jobs.shift()?.resolve(reply));
    const fail = (error: unknown) => {
      const index = this.threads.indexOf(thread);
      if (index >= 0) this.threads.splice(index, 1);
      for (const job of thread.jobs.splice(0)) job.reject(error);
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`worker thread exited (code ${code})`)));
    this.threads.push(thread);
    return thread;
  }
}
