// Runs bench/worker.ts in a child process: one system under test per process.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { WorkerJob } from "../worker.js";
import type { ServeJob } from "../workers/serve.js";
import { repoRoot } from "./llama-cpp.js";

const workerPath = path.join(repoRoot, "bench/worker.ts");

function spawnWorker(job: WorkerJob): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", workerPath], { cwd: repoRoot, stdio: ["pipe", "pipe", "pipe"] });
  child.stdin!.end(JSON.stringify(job));
  return child;
}

/** Runs a burst job to completion and returns its `RESULT` line, parsed. */
export function runWorker<T>(job: WorkerJob): Promise<T> {
  const child = spawnWorker(job);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => {
      const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
      if (code === 0 && line) resolve(JSON.parse(line.slice(7)) as T);
      else reject(new Error(`${job.system} worker exited with ${code}:\n${stderr.slice(-3000)}`));
    });
  });
}

/** Starts vllama's HTTP server in a child process; resolves once it listens. */
export function startVllamaServer(job: ServeJob): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawnWorker(job);
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let stdout = "";
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
      const port = /LISTENING (\d+)/.exec(stdout)?.[1];
      if (port) resolve({ url: `http://127.0.0.1:${port}`, stop });
    });
    child.once("exit", (code) => reject(new Error(`vllama server exited with ${code}:\n${stderr.slice(-3000)}`)));
  });
}
