// One system under test, in its own process: vllama's native step, vllama's Engine, node-llama-cpp,
// or vllama's HTTP server. A separate process per system keeps their llama.cpp builds (vllama's
// addon, node-llama-cpp's prebuilt libraries) out of each other's way and gives each a clean heap.
// Protocol: a WorkerJob as JSON on stdin; for bursts, one line `RESULT <json>` on stdout.
import { runNativeJob, type NativeJob } from "./workers/native.js";
import { runEngineJob, type EngineJob } from "./workers/engine.js";
import type { NodeLlamaCppJob } from "./workers/node-llama-cpp.js";
import { serveVllama, type ServeJob } from "./workers/serve.js";

export type WorkerJob = NativeJob | EngineJob | NodeLlamaCppJob | ServeJob;

async function readStdin(): Promise<string> {
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

async function main(): Promise<void> {
  const job = JSON.parse(await readStdin()) as WorkerJob;
  switch (job.system) {
    case "native":
      return report(await runNativeJob(job));
    case "engine":
      return report(await runEngineJob(job));
    case "node-llama-cpp":
      // Imported only here: node-llama-cpp need not be installed where it is not benchmarked.
      return report(await (await import("./workers/node-llama-cpp.js")).runNodeLlamaCppJob(job));
    case "serve":
      return serveVllama(job);
  }
}

function report(result: unknown): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
