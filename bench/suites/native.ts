// Suite `native`: vllama's native step (prefill, then greedy decode with sampling) against
// llama-batched-bench built from the same llama.cpp, on the same model and batch shape.
import { runWorker } from "../lib/child.js";
import { peerGpuArgs, runBatchedBench } from "../lib/llama-cpp.js";
import { fixed, markdownTable, machineInfo, ratio } from "../lib/machine.js";
import { distinctPrompts, withTokenizer } from "../lib/prompts.js";
import type { SuiteContext } from "../lib/suite.js";
import { startReport, type SuiteReport } from "../lib/report.js";
import type { NativeJob, NativeRunResult } from "../workers/native.js";
import type { BatchedBenchRow } from "../lib/llama-cpp.js";

const GOAL = 0.95;

export async function nativeSuite(s: SuiteContext): Promise<SuiteReport> {
  const parallels = s.parallels ?? (s.quick ? [1, 4] : [1, 4, 16, 32]);
  const pp = 128;
  const tg = s.quick ? 16 : 64;
  const nCtx = Math.max(...parallels) * (pp + tg);
  const report = startReport("native", "native: step throughput vs llama-batched-bench", s.command);
  const prompts = await withTokenizer(s.modelPath, s.backend, (m) => distinctPrompts(m, Math.max(...parallels), pp, 1).map((p) => p.tokens));
  const job: NativeJob = {
    system: "native", modelPath: s.modelPath, gpu: s.backend, nCtx, nBatch: 2048, nUbatch: 512, genTokens: tg,
    runs: parallels.map((n) => ({ prompts: prompts.slice(0, n) })),
  };
  const bbArgs = ["-m", s.modelPath, "-c", String(nCtx), "-b", "2048", "-ub", "512", "-npp", String(pp), "-ntg", String(tg), "-npl", parallels.join(","), ...peerGpuArgs(s.backend)];
  // Rounds alternate the systems so that load from other users hits both alike; best of each.
  const native: NativeRunResult[][] = [];
  const split: BatchedBenchRow[][] = [];
  const unified: BatchedBenchRow[][] = [];
  let threads = "?";
  for (let round = 0; round < s.rounds; round++) {
    const bb = await runBatchedBench(bbArgs);
    split.push(bb.rows);
    threads = bb.threads;
    native.push((await runWorker<{ results: NativeRunResult[] }>(job)).results);
    unified.push((await runBatchedBench([...bbArgs, "-kvu"])).rows);
  }
  report.peers.push(`llama-batched-bench ${bbArgs.join(" ").replace(s.modelPath, "M")}  (and the same with -kvu); n_threads ${threads}`);
  // Each system's best round per N (highest total tokens/s).
  const bestRow = <T extends { tokensPerSecond: number }>(runs: T[][], n: number, key: (t: T) => number): T =>
    runs.map((r) => r.find((t) => key(t) === n)!).reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
  const rows = parallels.map((n) => ({
    n,
    v: bestRow(native, n, (t) => t.parallel),
    b: bestRow(split, n, (t) => t.parallel),
    u: bestRow(unified, n, (t) => t.parallel),
  }));
  report.tables.push(markdownTable(
    ["N", "vllama native step t/s", "batched-bench t/s", "ratio", "batched-bench -kvu t/s", "ratio vs -kvu"],
    rows.map((r) => [r.n, fixed(r.v.tokensPerSecond), fixed(r.b.tokensPerSecond), ratio(r.v.tokensPerSecond, r.b.tokensPerSecond),
      fixed(r.u.tokensPerSecond), ratio(r.v.tokensPerSecond, r.u.tokensPerSecond)]),
  ));
  // Prefill and decode apart: which phase the gap is in, and how much of vllama's time is
  // llama_decode itself, sampling, or neither (the step call's own overhead).
  report.tables.push(markdownTable(
    ["N", "vllama prefill t/s", "bb prefill t/s", "bb -kvu prefill t/s", "vllama decode t/s", "bb decode t/s", "bb -kvu decode t/s", "vllama llama_decode ms", "vllama sampling ms", "vllama other ms"],
    rows.map(({ n, v, b, u }) => {
      const prefillTokens = n * pp;
      const decodeTokens = n * tg;
      const wall = v.prefillMs + v.decodeMs;
      return [n, fixed(prefillTokens / (v.prefillMs / 1000)), fixed(b.prefillTokensPerSecond), fixed(u.prefillTokensPerSecond),
        fixed(decodeTokens / (v.decodeMs / 1000)), fixed(b.decodeTokensPerSecond), fixed(u.decodeTokensPerSecond),
        fixed(v.nativeDecodeMs, 0), fixed(v.nativeSampleMs, 0), fixed(wall - v.nativeDecodeMs - v.nativeSampleMs, 0)];
    }),
  ));
  for (const r of rows) {
    const x = r.v.tokensPerSecond / r.b.tokensPerSecond;
    report.goals.push({ name: `N=${r.n} native / batched-bench`, target: `>= ${GOAL}x`, measured: ratio(r.v.tokensPerSecond, r.b.tokensPerSecond), met: x >= GOAL });
  }
  report.notes.push(
    `${pp}-token prompts, ${tg} generated tokens per sequence; total tokens/s = N*(${pp}+${tg}) / time (prefill + decode); best of ${s.rounds} round(s).`,
    "vllama's context always uses one unified KV cache (kv_unified); batched-bench without -kvu gives each sequence its own stream of c/N cells, so its attention reads fewer cells. The -kvu column is the like-for-like comparison.",
    "vllama samples every sequence's next token (greedy) in each step; batched-bench samples nothing.",
  );
  report.machineAfter = machineInfo();
  return report;
}
