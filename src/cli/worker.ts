// `vllama worker`: llama.cpp's own rpc-server (built beside the addon by scripts/rpc-backend.mjs),
// which holds and computes a share of a model's layers for a `vllama serve --rpc` elsewhere
// (docs/SCALE-OUT.md). It binds 127.0.0.1 unless told otherwise: ggml RPC has no authentication.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";
import { addonDir } from "../native/binding.js";
import { CliError, UsageError, type Ui } from "./ui.js";

export const DEFAULT_WORKER_HOST = "127.0.0.1";
export const DEFAULT_WORKER_PORT = 50052;

export interface WorkerOptions {
  host: string;
  port: number;
  /** MiB the worker reports as its memory: `serve --rpc` splits layers in proportion to it. */
  memMiB?: number;
  threads?: number;
}

/** The worker executable; built by both builds (scripts/rpc-backend.mjs, scripts/source-build.mjs). */
export const rpcServerPath = path.join(addonDir, "ggml-rpc-server");

function positiveInteger(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${name} must be an integer in [1, ${max}], got '${String(value)}'`);
  return n;
}

/** The worker's flags as given on the command line, checked. */
export function workerOptions(args: { host?: unknown; port?: unknown; mem?: unknown; threads?: unknown }): WorkerOptions {
  const host = args.host === undefined ? DEFAULT_WORKER_HOST : String(args.host);
  // rpc-server binds an IPv4 address literal (inet_addr), not a name.
  if (isIP(host) !== 4) throw new UsageError(`--host must be an IPv4 address to bind (e.g. ${DEFAULT_WORKER_HOST} or 0.0.0.0), got '${host}'`);
  return {
    host,
    port: positiveInteger("--port", args.port, 65535) ?? DEFAULT_WORKER_PORT,
    memMiB: positiveInteger("--mem", args.mem),
    threads: positiveInteger("--threads", args.threads),
  };
}

export function rpcServerArgs({ host, port, memMiB, threads }: WorkerOptions): string[] {
  const args = ["--host", host, "--port", String(port)];
  if (memMiB !== undefined) args.push("--mem", String(memMiB));
  if (threads !== undefined) args.push("--threads", String(threads));
  return args;
}

function securityWarning({ host, port }: WorkerOptions): string {
  const reach = host.startsWith("127.") ? "processes on this machine" : `anyone who can reach ${host}:${port}`;
  return [
    "!".repeat(78),
    "WARNING: ggml RPC has no authentication and no encryption. A worker runs whatever",
    `tensors and graphs it is sent: ${reach} can use it.`,
    "Run workers only on a private network you trust (never on a public address).",
    "!".repeat(78),
    "",
  ].join("\n");
}

/** Runs the worker until it exits (or this process is signalled, which it passes on). */
export async function workerCommand(ui: Ui, options: WorkerOptions): Promise<void> {
  if (!existsSync(rpcServerPath)) {
    throw new CliError(`the RPC worker is not built (${rpcServerPath} is missing): run \`npm run build:native\` (its warning says why the RPC build failed)`);
  }
  ui.stderr.write(securityWarning(options));
  if (!ui.quiet) ui.stdout.write(`vllama worker: serving ggml RPC on ${options.host}:${options.port} (vllama serve --rpc ${options.host}:${options.port})\n`);
  const child = spawn(rpcServerPath, rpcServerArgs(options), { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(ui.stdout, { end: false });
  child.stderr.pipe(ui.stderr, { end: false });
  let stopping = false;
  const forward = (signal: NodeJS.Signals) => {
    stopping = true;
    child.kill(signal);
  };
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on("error", reject);
      child.on("exit", (code, signal) => resolve({ code, signal }));
    });
    // rpc-server serves until it is stopped: any other exit is a failure, even with code 0
    // (it returns 0 after "Failed to create server socket").
    if (!stopping) {
      throw new CliError(`the RPC worker stopped (${signal ?? `exit code ${code}`}; is ${options.host}:${options.port} already in use?)`);
    }
  } finally {
    process.off("SIGINT", forward);
    process.off("SIGTERM", forward);
  }
}
