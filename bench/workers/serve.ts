// vllama's HTTP server (the same Engine and Express app `vllama serve` runs) on 127.0.0.1 and a
// free port; prints `LISTENING <port>` and serves until SIGTERM.
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { Engine } from "../../src/engine/engine.js";
import type { GpuChoice } from "../../src/native/index.js";
import { startServer } from "../../src/server/index.js";
import type { BenchPrompt } from "../lib/load.js";

export interface ServeJob {
  system: "serve";
  gpu: GpuChoice;
  parallel: number;
  /** KV cells one request may hold (num_ctx's default); default the Engine's. */
  contextLength?: number;
  kvCells: number;
  prefixCache: boolean;
  /** A vision model's files: created in the server's store as VISION_MODEL (a model layer and a projector layer). */
  vision?: { model: string; projector: string };
}

/** The name the served vision model gets. */
export const VISION_MODEL = "bench-vision";

/** One chat turn with the prompt's image, as the images suite sends it to vllama (Ollama's /api/chat). */
export function chatWithImageRequest(_modelPath: string, prompt: BenchPrompt, maxTokens: number) {
  return {
    model: VISION_MODEL, stream: true as const, keep_alive: -1,
    messages: [{ role: "user", content: prompt.text, images: prompt.image ? [prompt.image] : [] }],
    options: { num_predict: maxTokens, temperature: 0, ignore_eos: true },
  };
}

export async function serveVllama(job: ServeJob): Promise<void> {
  const engine = new Engine({
    modelsDir: path.join(os.tmpdir(), "vllama-bench-store"), gpu: job.gpu, parallel: job.parallel, contextLength: job.contextLength, kvCells: job.kvCells, prefixCache: job.prefixCache,
  });
  if (job.vision) await engine.store.createFromModelfile(VISION_MODEL, `FROM ${job.vision.model}\nFROM ${job.vision.projector}\n`, "/");
  const server = await startServer({
    engine, logger: pino({ level: "silent" }), config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "100mb" },
  });
  process.stdout.write(`LISTENING ${server.port}\n`);
  process.once("SIGTERM", () => {
    void server.close().then(() => engine.close()).then(() => process.exit(0));
  });
}
