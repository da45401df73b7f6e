// ggml RPC workers on hosts of their own, as far as one machine allows: each worker runs in its
// own network namespace, reached over a veth pair at its own address (10.231.N.2), so the
// server's traffic crosses a real (virtual) link instead of loopback. Checks that stories260K's
// greedy output through the two workers equals the local engine's, alone and for 16 concurrent
// sequences, and that a worker whose link goes down mid-generation (a host that vanishes without
// a reset: no RST, no FIN) fails the requests with an error naming it within the RPC timeout,
// while a request on a local model is still served.
//   sudo node --import tsx scripts/rpc-netns-check.ts
// Needs CAP_NET_ADMIN (ip netns, ip link); the default test suite runs the workers on loopback
// (test/engine/rpc.test.ts) because CI has no such rights.
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { connect } from "node:net";
import os from "node:os";
import path from "node:path";
import { RpcWorkerError } from "../src/api/errors.js";
import { rpcServerArgs, rpcServerPath } from "../src/cli/worker.js";
import { Engine } from "../src/engine/engine.js";
import { OTHER_PROMPTS, REFERENCE_PROMPT, REFERENCE_TEXT, storiesPath } from "../test/helpers/models.js";

const PORT = 50052;
const TIMEOUT_MS = 5_000;
const hosts = [1, 2].map((n) => ({ ns: `vllama-w${n}`, hostIf: `vllama-h${n}`, peerIf: `vllama-p${n}`, address: `10.231.${n}.2`, gateway: `10.231.${n}.1` }));
type Host = (typeof hosts)[number];

const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });

function removeHost(h: Host): void {
  for (const args of [["netns", "del", h.ns], ["link", "del", h.hostIf]]) {
    try {
      ip(...args);
    } catch {
      // Not there: nothing to remove.
    }
  }
}

function addHost(h: Host): void {
  removeHost(h);
  ip("netns", "add", h.ns);
  ip("link", "add", h.hostIf, "type", "veth", "peer", "name", h.peerIf);
  ip("link", "set", h.peerIf, "netns", h.ns);
  ip("addr", "add", `${h.gateway}/24`, "dev", h.hostIf);
  ip("link", "set", h.hostIf, "up");
  ip("netns", "exec", h.ns, "ip", "addr", "add", `${h.address}/24`, "dev", h.peerIf);
  ip("netns", "exec", h.ns, "ip", "link", "set", h.peerIf, "up");
  ip("netns", "exec", h.ns, "ip", "link", "set", "lo", "up");
}

async function startWorker(h: Host): Promise<ChildProcess> {
  const child = spawn("ip", ["netns", "exec", h.ns, rpcServerPath, ...rpcServerArgs({ host: h.address, port: PORT, threads: 1 })], { stdio: "ignore" });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect(PORT, h.address, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (accepted) return child;
    if (Date.now() > deadline) throw new Error(`no worker listening on ${h.address}:${PORT}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const greedy = { temperature: 0, num_predict: 32 };
const generate = async (engine: Engine, prompt: string, num_predict = 32) =>
  (await engine.generate({ model: storiesPath, prompt, stream: false, options: { ...greedy, num_predict } })).response;

async function main(): Promise<void> {
  const store = mkdtempSync(path.join(os.tmpdir(), "vllama-netns-"));
  const workers: ChildProcess[] = [];
  try {
    for (const h of hosts) addHost(h);
    for (const h of hosts) workers.push(await startWorker(h));
    const prompts = [REFERENCE_PROMPT, ...OTHER_PROMPTS];

    const local = new Engine({ modelsDir: store, parallel: 16 });
    const localOutput = await Promise.all(prompts.map((p) => generate(local, p)));
    const split = new Engine({ modelsDir: store, parallel: 16, rpc: hosts.map((h) => `${h.address}:${PORT}`), rpcTimeoutMs: TIMEOUT_MS });
    assert.equal(await generate(split, REFERENCE_PROMPT, 48), REFERENCE_TEXT);
    console.log("alone: the reference text, through two workers in their own namespaces");
    assert.deepEqual(await Promise.all(prompts.map((p) => generate(split, p))), localOutput);
    console.log(`${prompts.length} concurrent sequences: each equals the local engine's output`);

    const lost = hosts[1];
    const running = prompts.slice(0, 4).map((p) => generate(split, p, 400).then(() => undefined, (error: unknown) => error));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const downAt = performance.now();
    ip("link", "set", lost.hostIf, "down");
    const outcomes = await Promise.all(running);
    const failedAfterMs = performance.now() - downAt;
    for (const outcome of outcomes) {
      assert.ok(outcome instanceof RpcWorkerError, `expected RpcWorkerError, got ${String(outcome)}`);
      assert.match(outcome.message, new RegExp(`RPC worker ${lost.address.replaceAll(".", "\\.")}:${PORT}`));
    }
    assert.ok(failedAfterMs < TIMEOUT_MS * 3, `failed after ${failedAfterMs.toFixed(0)} ms`);
    console.log(`link down mid-generation: all 4 requests failed after ${failedAfterMs.toFixed(0)} ms (timeout ${TIMEOUT_MS} ms): ${(outcomes[0] as Error).message}`);
    assert.equal(await generate(local, REFERENCE_PROMPT, 48), REFERENCE_TEXT);
    console.log("meanwhile the local engine still serves");
    await split.close();
    await local.close();
  } finally {
    for (const w of workers) w.kill("SIGKILL");
    await Promise.all(workers.filter((w) => w.exitCode === null).map((w) => once(w, "exit")));
    for (const h of hosts) removeHost(h);
  }
}

main().catch((error) => {
  console.error(`rpc-netns-check: ${(error as Error).stack ?? error}`);
  process.exitCode = 1;
});
