// Suite `rpc`: vllama's in-process Engine with the model on the local device vs the same Engine
// with its layers spread over two ggml RPC workers (llama.cpp's rpc-server, as `vllama worker`
// runs it) on loopback, N concurrent requests of W-token prompts. Each RPC burst's bytes on the
// loopback interface are the bytes a real network would carry: per step, and what they would
// cost at 1, 10 and 100 Gbit/s.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { connect, createServer, type AddressInfo } from "node:net";
import os from "node:os";
import { rpcServerArgs, rpcServerPath } from "../../src/cli/worker.js";
import { fixed, machineInfo, markdownTable } from "../lib/machine.js";
import { startReport, type SuiteReport } from "../lib/report.js";
import type { SuiteContext } from "../lib/suite.js";
import { openEngine, type Session } from "../lib/systems.js";
import { loadNote, pairedRatio, roundsTable, runConcurrent, shortRequestNotes, throughputTable, type ConcurrentResults } from "./concurrent.js";

const LOCAL = "vllama local";
const SPLIT = "vllama over 2 RPC workers";
const LINK_GBITS = [1, 10, 100];

export async function rpcSuite(s: SuiteContext): Promise<SuiteReport> {
  const report = startReport("rpc", "rpc: the Engine with the model local vs spread over 2 ggml RPC workers on loopback", s.command);
  if (!existsSync(rpcServerPath)) throw new Error(`${rpcServerPath} is missing: npm install builds it (scripts/rpc-backend.mjs)`);
  const threads = os.cpus().length;
  const workers = await Promise.all([0, 1].map(() => startWorker(threads)));
  try {
    const endpoints = workers.map((w) => w.endpoint);
    const r = await runConcurrent(s, [
      { name: LOCAL, open: (setup) => countLoopbackBytes(openEngine({ ...setup, profile: true })) },
      { name: SPLIT, open: (setup) => countLoopbackBytes(openEngine({ ...setup, profile: true, rpc: endpoints })) },
    ]);
    const names = [LOCAL, SPLIT].filter((name) => r.results[name]);
    report.peers.push(`${rpcServerPath} ${rpcServerArgs({ host: "127.0.0.1", port: 0, threads }).join(" ").replace("--port 0", "--port <free port>")} (two of them)`);
    report.tables.push(throughputTable(r, names), networkTable(r), roundsTable(r, names));
    report.notes.push(
      loadNote(r, s.rounds),
      `Both systems are the same Engine in a child process of the bench; ${SPLIT} is given \`rpc: [two loopback endpoints]\` and offloads every layer to the workers (num_gpu -1, split by the memory each reports), so each step's activations cross from the server to worker 1, to worker 2 and back. Workers run with --threads ${threads}; they compute one after the other, so the machine's cores serve one process at a time in both systems.`,
      "Network bytes: the loopback interface's transmitted bytes (/proc/net/dev, `lo`) over the best round's burst, TCP/IP headers included. The bench's own messages go through pipes, so the local system's bursts, counted the same way, show what else used loopback meanwhile (expected: near 0). Per step = those bytes / the Engine's step count in the same burst.",
      "Projected t/s: the burst's tokens over (its wall time + its bytes at the link's rate). It adds bandwidth only: every step also waits for several RPC round trips per worker (set the inputs, compute the graph, read the outputs), which on a LAN (~0.1-0.5 ms each) adds to every step's time regardless of bytes.",
      ...shortRequestNotes(r),
    );
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
  report.machineAfter = machineInfo();
  return report;
}

/** Per case: the split's tokens/s over local's, its bytes per burst and per step, and the tokens/s a real link of each speed would leave. */
function networkTable(r: ConcurrentResults): string {
  return markdownTable(
    ["N x prompt tokens", "2 RPC workers / local t/s, paired (best)", "loopback bytes in local's burst (background)", "bytes per burst", "steps", "bytes per step", ...LINK_GBITS.map((g) => `projected t/s at ${g} Gbit/s`)],
    r.cases.map((c) => {
      const split = r.results[SPLIT]?.[c.label];
      const local = r.results[LOCAL]?.[c.label];
      const bytes = split?.networkBytes;
      const steps = split?.profile?.steps;
      if (!split || !local || bytes === undefined || !steps) return [c.label, "n/a", "", "", "", "", ...LINK_GBITS.map(() => "")];
      const tokens = (split.best.tokensPerSecond * split.best.wallMs) / 1000;
      const projected = (gbits: number) => fixed(tokens / (split.best.wallMs / 1000 + (bytes * 8) / (gbits * 1e9)));
      return [c.label, `${pairedRatio(r, SPLIT, [LOCAL], c).toFixed(2)}x (${(split.best.tokensPerSecond / local.best.tokensPerSecond).toFixed(2)}x)`,
        local.networkBytes ?? "n/a", bytes, steps, Math.round(bytes / steps), ...LINK_GBITS.map(projected)];
    }),
  );
}

/** The session, with each burst's bytes sent over the loopback interface. */
async function countLoopbackBytes(opening: Promise<Session>): Promise<Session> {
  const session = await opening;
  return {
    ...session,
    async burst(prompts) {
      const before = loopbackBytes();
      const result = await session.burst(prompts);
      return { ...result, networkBytes: loopbackBytes() - before };
    },
  };
}

/** Bytes the loopback interface has transmitted since boot (each byte sent over it counts once). */
function loopbackBytes(): number {
  const line = readFileSync("/proc/net/dev", "utf8").split("\n").find((l) => l.trim().startsWith("lo:"));
  if (!line) throw new Error("no loopback interface in /proc/net/dev");
  // "lo: rx_bytes rx_packets ... (8 receive fields) tx_bytes ..."
  return Number(line.split(":")[1]!.trim().split(/\s+/)[8]);
}

interface Worker {
  endpoint: string;
  stop(): Promise<void>;
}

async function startWorker(threads: number): Promise<Worker> {
  const port = await freePort();
  const child: ChildProcess = spawn(rpcServerPath, rpcServerArgs({ host: "127.0.0.1", port, threads }), { stdio: "ignore" });
  const exited = once(child, "exit");
  await waitForListener(port, child);
  return {
    endpoint: `127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Waits until the worker accepts connections (it loads its backends first). */
async function waitForListener(port: number, child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`rpc-server on port ${port} exited with code ${child.exitCode}`);
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (accepted) return;
    if (Date.now() > deadline) throw new Error(`rpc-server on port ${port} did not listen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
