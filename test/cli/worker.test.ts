// `vllama worker`: llama.cpp's rpc-server started as users start it (a separate process through
// the CLI), asked over the RPC protocol what it serves; its flags checked; its warning printed.
// And `serve --rpc` refusing a bad worker list.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, test } from "node:test";
import { main } from "../../src/cli/main.js";
import { repoRoot } from "../helpers/models.js";
import { freePort, waitForWorker } from "../helpers/rpc-workers.js";

const MAIN = join(repoRoot, "src/cli/main.ts");

async function runCli(argv: string[]): Promise<{ code: number; stderr: string }> {
  const stderr = new PassThrough();
  let text = "";
  stderr.on("data", (chunk: Buffer) => (text += chunk.toString()));
  const code = await main(argv, { stdin: new PassThrough(), stdout: new PassThrough(), stderr, env: {} });
  return { code, stderr: text };
}

function spawnWorker(args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, "worker", ...args], { cwd: repoRoot, env: { ...process.env, NO_COLOR: "1" } });
  const output = { stdout: "", stderr: "" };
  child.stdout.on("data", (chunk: Buffer) => (output.stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output.stderr += chunk.toString()));
  return { child, output, exited: once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]> };
}

describe("vllama serve --rpc", () => {
  test("a bad --rpc value is a usage error (exit 2) saying what is expected, before anything starts", async () => {
    for (const value of ["nonsense", "10.0.0.2:50052,10.0.0.2:50052", "10.0.0.2:70000"]) {
      const { code, stderr } = await runCli(["serve", "--rpc", value]);
      assert.equal(code, 2, stderr);
      assert.match(stderr, new RegExp(`invalid --rpc="${value}": expected comma-separated host:port of \`vllama worker\`s`));
    }
  });
});

describe("vllama worker", () => {
  test("bad flags are usage errors (exit 2) naming the flag", async () => {
    for (const [args, message] of [
      [["--host", "worker.example"], "--host must be an IPv4 address"],
      [["--port", "0"], "--port must be an integer in [1, 65535]"],
      [["--port", "70000"], "--port must be an integer in [1, 65535]"],
      [["--mem", "lots"], "--mem must be an integer"],
      [["--threads", "-2"], "--threads must be an integer"],
    ] as const) {
      const { code, stderr } = await runCli(["worker", ...args]);
      assert.equal(code, 2, stderr);
      assert.match(stderr, new RegExp(message.replace(/[[\]]/g, "\\$&")));
    }
  });

  test("serves ggml RPC on 127.0.0.1, offers --mem, warns that RPC has no authentication, stops on SIGTERM", async () => {
    const port = await freePort();
    const { child, output, exited } = spawnWorker(["--port", String(port), "--mem", "512", "--threads", "1"]);
    try {
      const report = await waitForWorker(`127.0.0.1:${port}`);
      assert.equal(report.version, "7.0.0");
      assert.equal(report.memoryTotal, 512 * 1024 * 1024);
      assert.equal(report.memoryFree, 512 * 1024 * 1024);
      assert.match(output.stderr, /WARNING: ggml RPC has no authentication/);
      assert.match(output.stderr, /private network/);
      assert.match(output.stdout, new RegExp(`serving ggml RPC on 127\\.0\\.0\\.1:${port}`));
    } finally {
      child.kill("SIGTERM");
    }
    const [code] = await exited;
    assert.equal(code, 0, output.stderr);
  });

  test("a port already taken: the worker fails with exit 1 and says so", async () => {
    const taken = createServer();
    taken.listen(0, "127.0.0.1");
    await once(taken, "listening");
    const { port } = taken.address() as { port: number };
    try {
      const { output, exited } = spawnWorker(["--port", String(port), "--threads", "1"]);
      const [code] = await exited;
      assert.equal(code, 1);
      assert.match(output.stderr, new RegExp(`the RPC worker stopped .*127\\.0\\.0\\.1:${port} already in use`));
    } finally {
      taken.close();
    }
  });
});
