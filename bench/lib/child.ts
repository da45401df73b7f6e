// Runs bench/worker.ts in a child process: one system under test per process.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import type { SessionCommand, WorkerJob } from "../worker.js";
import type { ServeJob } from "../workers/serve.js";
import { repoRoot } from "./llama-cpp.js";

const workerPath = path.join(repoRoot, "bench/worker.ts");

function spawnWorker(job: WorkerJob, endInput = true): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", workerPath], { cwd: repoRoot, stdio: ["pipe", "pipe", "pipe"] });
  child.stdin!.write(`${JSON.stringify(job)}\n`);
  if (endInput) child.stdin!.end();
  return child;
}

/** Asks a child to finish (`ask`), and kills it if it has not within 5 s (10 s after SIGTERM). */
async function stopChild(child: ChildProcess, ask: () => void): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  ask();
  const term = setTimeout(() => child.kill("SIGTERM"), 5000);
  const kill = setTimeout(() => child.kill("SIGKILL"), 10000);
  await exited;
  clearTimeout(term);
  clearTimeout(kill);
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

/** A worker that keeps its system loaded and answers one command at a time. */
export interface WorkerHandle {
  request<T>(command: SessionCommand): Promise<T>;
  stop(): Promise<void>;
}

/** Starts a session worker (engine, node-llama-cpp); resolves once its model is loaded. */
export function openWorker(job: WorkerJob): Promise<WorkerHandle> {
  const child = spawnWorker(job, false);
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const waiting: Array<{ resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  const failAll = (code: number | null) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`${job.system} worker exited with ${code}:\n${stderr.slice(-3000)}`));
  };
  child.once("exit", failAll);
  const lines = createInterface({ input: child.stdout! });
  lines.on("line", (line) => {
    if (line === "READY" || line.startsWith("RESULT ")) waiting.shift()?.resolve(line);
  });
  const next = () => new Promise<string>((resolve, reject) => {
    if (child.exitCode !== null) reject(new Error(`${job.system} worker exited with ${child.exitCode}:\n${stderr.slice(-3000)}`));
    else waiting.push({ resolve, reject });
  });
  const handle: WorkerHandle = {
    async request<T>(command: SessionCommand): Promise<T> {
      const answer = next();
      child.stdin!.write(`${JSON.stringify(command)}\n`);
      return JSON.parse((await answer).slice("RESULT ".length)) as T;
    },
    stop: () => stopChild(child, () => child.stdin!.end()),
  };
  return next().then(() => handle);
}

/** Starts vllama's HTTP server in a child process; resolves once it listens. */
export function startVllamaServer(job: ServeJob): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawnWorker(job);
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
  const stop = () => stopChild(child, () => child.kill("SIGTERM"));
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
