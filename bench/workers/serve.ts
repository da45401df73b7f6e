// vllama's HTTP server (the same Engine and Express app `vllama serve` runs) on 127.0.0.1 and a
// free port; prints `LISTENING <port>` and serves until SIGTERM.
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { Engine } from "../../src/engine/engine.js";
import type { GpuChoice } from "../../src/native/index.js";
import { startServer } from "../../src/server/index.js";

export interface ServeJob {
  system: "serve";
  gpu: GpuChoice;
  parallel: number;
  /** KV cells one request may hold (num_ctx's default); default the Engine's. */
  contextLength?: number;
  kvCells: number;
  prefixCache: boolean;
}

export async function serveVllama(job: ServeJob): Promise<void> {
  const engine = new Engine({
    modelsDir: path.join(os.tmpdir(), "vllama-bench-store"), gpu: job.gpu, parallel: job.parallel, contextLength: job.contextLength, kvCells: job.kvCells, prefixCache: job.prefixCache,
  });
  const server = await startServer({
    engine, logger: pino({ level: "silent" }), config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "100mb" },
  });
  process.stdout.write(`LISTENING ${server.port}\n`);
  process.once("SIGTERM", () => {
    void server.close().then(() => engine.close()).then(() => process.exit(0));
  });
}
