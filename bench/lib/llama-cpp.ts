// The llama.cpp peers, built from the same llama.cpp source as vllama by bench/build-peers.sh:
// llama-batched-bench (the C++ ceiling) and llama-server (the HTTP peer).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { postStreaming, waitHealthy } from "./http-stream.js";
import type { BenchPrompt, RequestResult } from "./load.js";
import type { Backend } from "./suite.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const peerBuildDir = process.env.VLLAMA_BENCH_LLAMA_BUILD ?? path.join(repoRoot, ".bench/llama-build");

/** The peers' own flags for the backend: every layer on the GPU, as vllama puts them. */
export function peerGpuArgs(backend: Backend): string[] {
  return backend === "cuda" ? ["-ngl", "999"] : [];
}

export function peerBinary(name: "llama-batched-bench" | "llama-server"): string {
  const bin = path.join(peerBuildDir, "bin", name);
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build the peers first with bench/build-peers.sh`);
  return bin;
}

export interface BatchedBenchRow {
  pp: number;
  tg: number;
  parallel: number;
  /** Total tokens/s over prefill and generation (`S t/s`). */
  tokensPerSecond: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

/** Parses the rows of llama-batched-bench's markdown table. */
export function parseBatchedBench(output: string): BatchedBenchRow[] {
  const rows: BatchedBenchRow[] = [];
  for (const line of output.split("\n")) {
    const cells = line.split("|").map((c) => c.trim()).filter((c) => c !== "");
    if (cells.length !== 10 || !/^\d+$/.test(cells[0])) continue;
    const n = cells.map(Number);
    rows.push({ pp: n[0], tg: n[1], parallel: n[2], prefillTokensPerSecond: n[5], decodeTokensPerSecond: n[7], tokensPerSecond: n[9] });
  }
  return rows;
}

export async function runBatchedBench(args: string[]): Promise<{ command: string; rows: BatchedBenchRow[]; threads: string }> {
  const bin = peerBinary("llama-batched-bench");
  const { stdout, stderr } = await promisify(execFile)(bin, args, { maxBuffer: 64 * 2 ** 20 });
  const text = `${stdout}\n${stderr}`;
  const rows = parseBatchedBench(text);
  if (rows.length === 0) throw new Error(`llama-batched-bench printed no table:\n${text.slice(-2000)}`);
  return { command: `llama-batched-bench ${args.join(" ")}`, rows, threads: /n_threads = (\d+)/.exec(text)?.[1] ?? "?" };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A llama-server child process on 127.0.0.1, ready to serve once `start` resolves. */
export class LlamaServer {
  private child: ChildProcess | undefined;
  private log = "";
  readonly args: string[];

  private constructor(readonly port: number, modelPath: string, extraArgs: string[]) {
    this.args = ["-m", modelPath, ...extraArgs, "--host", "127.0.0.1", "--port", String(port)];
  }

  static async start(modelPath: string, extraArgs: string[]): Promise<LlamaServer> {
    const server = new LlamaServer(await freePort(), modelPath, extraArgs);
    server.child = spawn(peerBinary("llama-server"), server.args, { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (d: Buffer) => (server.log = (server.log + d.toString()).slice(-20_000));
    server.child.stdout!.on("data", keep);
    server.child.stderr!.on("data", keep);
    try {
      // A child killed by a signal (SIGILL, SIGSEGV) keeps exitCode null: its signalCode tells.
      await waitHealthy(`${server.url}/health`, 120_000, () => server.child!.exitCode === null && server.child!.signalCode === null);
    } catch (error) {
      await server.stop();
      throw new Error(`${(error as Error).message}\n${server.log.slice(-2000)}`);
    }
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get command(): string {
    return `llama-server ${this.args.map((a) => (a.endsWith(".gguf") ? "M" : a)).join(" ").replace(/ --host .*$/, "")}`;
  }

  /** One streaming `/completion` of the prompt's tokens, EOS ignored, the slot's cache reused. */
  async complete(prompt: BenchPrompt, maxTokens: number): Promise<RequestResult> {
    const { ttftMs, chunks } = await postStreaming(`${this.url}/completion`, {
      prompt: prompt.tokens, n_predict: maxTokens, ignore_eos: true, cache_prompt: true, stream: true, temperature: 0,
    });
    const last = chunks[chunks.length - 1] as { stop?: boolean; tokens_predicted?: number; timings?: { predicted_n?: number } };
    return { ttftMs, promptTokens: prompt.tokens.length, generatedTokens: last?.timings?.predicted_n ?? last?.tokens_predicted ?? 0 };
  }

  /** One streaming OpenAI chat turn: the prompt's image (a data URL), then its text; EOS ignored. */
  async chatWithImage(prompt: BenchPrompt, maxTokens: number): Promise<RequestResult> {
    const content = [{ type: "image_url", image_url: { url: `data:image/png;base64,${prompt.image}` } }, { type: "text", text: prompt.text }];
    const { ttftMs, chunks } = await postStreaming(`${this.url}/v1/chat/completions`, {
      messages: [{ role: "user", content }], max_tokens: maxTokens, ignore_eos: true, cache_prompt: true, stream: true, temperature: 0,
      stream_options: { include_usage: true },
    });
    const last = chunks[chunks.length - 1] as { usage?: { completion_tokens?: number }; timings?: { predicted_n?: number } };
    return { ttftMs, promptTokens: 0, generatedTokens: last?.usage?.completion_tokens ?? last?.timings?.predicted_n ?? 0 };
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}
