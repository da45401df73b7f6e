// Suite `native`: vllama's native step (prefill, then greedy decode with sampling) against
// llama-batched-bench built from the same llama.cpp, on the same model and batch shape.
import { runWorker } from "../lib/child.js";
import { runBatchedBench, type BatchedBenchRow } from "../lib/llama-cpp.js";
import { fixed, markdownTable, machineInfo, ratio } from "../lib/machine.js";
import { distinctPrompts, withTokenizer } from "../lib/prompts.js";
import type { SuiteContext } from "../lib/suite.js";
import { startReport, type SuiteReport } from "../lib/report.js";
import type { NativeJob, NativeRunResult } from "../workers/native.js";

const GOAL = 0.95;

export async function nativeSuite(s: SuiteContext): Promise<SuiteReport> {
  const parallels = s.quick ? [1, 4] : [1, 4, 16, 32];
  const pp = 128;
  const tg = s.quick ? 16 : 64;
  const nCtx = Math.max(...parallels) * (pp + tg);
  const report = startReport("native", "native: step throughput vs llama-batched-bench", s.command);
  const prompts = await withTokenizer(s.modelPath, (m) => distinctPrompts(m, Math.max(...parallels), pp, 1).map((p) => p.tokens));
  const job: NativeJob = {
    system: "native", modelPath: s.modelPath, nCtx, nBatch: 2048, nUbatch: 512, genTokens: tg,
    runs: parallels.map((n) => ({ prompts: prompts.slice(0, n) })),
  };
  const bbArgs = ["-m", s.modelPath, "-c", String(nCtx), "-b", "2048", "-ub", "512", "-npp", String(pp), "-ntg", String(tg), "-npl", parallels.join(",")];
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
  const bestOf = <T>(runs: T[][], n: number, key: (t: T) => number, pick: (t: T) => number) =>
    Math.max(...runs.map((r) => r.find((t) => key(t) === n)).filter((t) => t !== undefined).map(pick));
  const rows = parallels.map((n) => {
    const v = bestOf(native, n, (t) => t.parallel, (t) => t.tokensPerSecond);
    const b = bestOf(split, n, (t) => t.parallel, (t) => t.tokensPerSecond);
    const u = bestOf(unified, n, (t) => t.parallel, (t) => t.tokensPerSecond);
    return { n, v, b, u };
  });
  report.tables.push(markdownTable(
    ["N", "vllama native step t/s", "batched-bench t/s", "ratio", "batched-bench -kvu t/s", "ratio vs -kvu"],
    rows.map((r) => [r.n, fixed(r.v), fixed(r.b), ratio(r.v, r.b), fixed(r.u), ratio(r.v, r.u)]),
  ));
  for (const r of rows) {
    report.goals.push({ name: `N=${r.n} native / batched-bench`, target: `>= ${GOAL}x`, measured: ratio(r.v, r.b), met: r.v / r.b >= GOAL });
  }
  report.notes.push(
    `${pp}-token prompts, ${tg} generated tokens per sequence; total tokens/s = N*(${pp}+${tg}) / time (prefill + decode); best of ${s.rounds} round(s).`,
    "vllama's context always uses one unified KV cache (kv_unified); batched-bench without -kvu gives each sequence its own stream of c/N cells, so its attention reads fewer cells. The -kvu column is the like-for-like comparison.",
    "vllama samples every sequence's next token (greedy) in each step; batched-bench samples nothing.",
  );
  report.machineAfter = machineInfo();
  return report;
}
