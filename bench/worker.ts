// One system under test, in its own process: vllama's native step, vllama's Engine, node-llama-cpp,
// or vllama's HTTP server. A separate process per system keeps their llama.cpp builds (vllama's
// addon, node-llama-cpp's prebuilt libraries) out of each other's way and gives each a clean heap.
// Protocol, one JSON object per stdin line: the first is a WorkerJob. A native job answers once
// with `RESULT <json>` and exits. A session job (engine, node-llama-cpp) loads its model, prints
// `READY`, then answers each `{ "warmup": prompt }` or `{ "burst": prompts }` line with one
// `RESULT <json>` line, and exits when stdin ends. A serve job prints `LISTENING <port>`.
import { createInterface } from "node:readline";
import { burst, type BenchPrompt } from "./lib/load.js";
import { runNativeJob, type NativeJob } from "./workers/native.js";
import { openEngineSession, type EngineJob, type WorkerSession } from "./workers/engine.js";
import type { NodeLlamaCppJob } from "./workers/node-llama-cpp.js";
import { serveVllama, type ServeJob } from "./workers/serve.js";

export type WorkerJob = NativeJob | EngineJob | NodeLlamaCppJob | ServeJob;
export type SessionCommand = { warmup: BenchPrompt } | { burst: BenchPrompt[] };

function report(result: unknown): void {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

async function answerCommands(session: WorkerSession, maxTokens: number, lines: AsyncIterator<string>): Promise<void> {
  process.stdout.write("READY\n");
  try {
    for (let next = await lines.next(); !next.done; next = await lines.next()) {
      const command = JSON.parse(next.value) as SessionCommand;
      if ("warmup" in command) {
        await session.one(command.warmup);
        report({});
      } else {
        session.profiler?.reset();
        const result = await burst({ prompts: command.burst, maxTokens }, session.one);
        report(session.profiler ? { ...result, profile: session.profiler.summary() } : result);
      }
    }
  } finally {
    await session.close();
  }
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done) throw new Error("no job on stdin");
  const job = JSON.parse(first.value) as WorkerJob;
  switch (job.system) {
    case "native":
      return report(await runNativeJob(job));
    case "engine":
      return answerCommands(await openEngineSession(job), job.maxTokens, lines);
    case "node-llama-cpp": {
      // Imported only here: node-llama-cpp need not be installed where it is not benchmarked.
      const { openNodeLlamaCppSession } = await import("./workers/node-llama-cpp.js");
      return answerCommands(await openNodeLlamaCppSession(job), job.maxTokens, lines);
    }
    case "serve":
      return serveVllama(job);
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
