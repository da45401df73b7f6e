// Suite `engine`: vllama's in-process Engine vs llama-server over HTTP and node-llama-cpp
// in-process, N concurrent requests.
import { machineInfo, markdownTable, ratio } from "../lib/machine.js";
import { startReport, type SuiteReport } from "../lib/report.js";
import type { SuiteContext } from "../lib/suite.js";
import { openEngine, openLlamaServer, openNodeLlamaCpp } from "../lib/systems.js";
import { pairedRatio, roundsTable, runConcurrent, shortRequestNotes, throughputTable, PROMPT_TOKENS, type ConcurrentResults } from "./concurrent.js";

export async function engineSuite(s: SuiteContext): Promise<SuiteReport> {
  const report = startReport("engine", "engine: in-process Engine vs llama-server and node-llama-cpp", s.command);
  // node-llama-cpp's CUDA build is a separate ~160 MB package the project does not install: on a
  // GPU it is left out rather than run on the CPU against GPU peers.
  const withNodeLlamaCpp = s.backend === "cpu";
  const r = await runConcurrent(s, [
    { name: "vllama", open: (setup) => openEngine({ ...setup, profile: true }) },
    { name: "llama-server", open: openLlamaServer },
    ...(withNodeLlamaCpp ? [{ name: "node-llama-cpp", open: openNodeLlamaCpp }] : []),
  ]);
  const names = ["vllama", "llama-server", ...(withNodeLlamaCpp ? ["node-llama-cpp"] : [])];
  report.peers.push(...r.commands);
  report.tables.push(throughputTable(r, names));
  const best = (name: string, n: number) => r.results[name]?.[n]?.best.tokensPerSecond;
  const ttft = (name: string, n: number) => r.results[name]?.[n]?.ttftP50Ms;
  // "paired (best)": the median of same-round ratios, then the ratio of each system's best round.
  const tpsRatio = (peer: string, n: number) =>
    r.results[peer] ? `${pairedRatio(r, "vllama", peer, n).toFixed(2)}x (${ratio(best("vllama", n), best(peer, n))})` : "n/a";
  report.tables.push(markdownTable(
    ["N", "vllama / llama-server t/s, paired (best)", "vllama / node-llama-cpp t/s, paired (best)", "TTFT p50 vllama / llama-server"],
    r.parallels.map((n) => [n, tpsRatio("llama-server", n), tpsRatio("node-llama-cpp", n), ratio(ttft("vllama", n), ttft("llama-server", n))]),
  ));
  report.tables.push(roundsTable(r, names));
  report.tables.push(profileTable(r));
  const top = Math.max(...r.parallels);
  const throughputGoal = (peer: string, target: number) => ({
    name: `N=${top} vllama / ${peer} tokens/s (median of same-round ratios)`, target: `>= ${target}x`,
    measured: r.results[peer] ? tpsRatio(peer, top) : "not run (GPU)",
    met: r.results[peer] !== undefined && pairedRatio(r, "vllama", peer, top) >= target,
  });
  report.goals.push(
    throughputGoal("llama-server", 1.1),
    throughputGoal("node-llama-cpp", 1.25),
    ...r.parallels.map((n) => {
      const a = ttft("vllama", n)!;
      const b = ttft("llama-server", n)!;
      return { name: `N=${n} TTFT p50 vllama vs llama-server`, target: "no worse (<= 1.0x)", measured: `${a.toFixed(0)} ms vs ${b.toFixed(0)} ms (${ratio(a, b)})`, met: a <= b };
    }),
  );
  report.notes.push(
    `${PROMPT_TOKENS}-token prompts (distinct per request and per run), ${r.maxTokens} generated tokens (num_predict / n_predict, EOS ignored), temperature 0; tokens/s = (prompt + generated tokens) / wall time of the burst; a system's t/s is its best of ${s.rounds} round(s), and a ratio is first the median over rounds of the two systems' same-round ratio (robust to one lucky round), then in brackets the ratio of their best rounds; TTFT = request sent to first streamed chunk, p50 over every request of every round (at N = 1 a round is one request); rounds run after one warm-up request; all systems stay loaded and their rounds interleave (round 1 of each, then round 2 of each...), so drift in the machine's speed hits them alike.`,
    "The vllama profile reads the step timings the engine keeps around the Executor's run(), the only caller of the native step (EngineMetrics.steps, bench/lib/step-profile.ts): decode and sample are the addon's own timings; 'native other' is the rest of the step call; 'JS between steps' is the gap from one step's end to the next step's start (scheduling, delivering tokens, streaming), gaps over 50 ms counted as idle.",
    "vllama and node-llama-cpp run in-process (each in its own child process of the bench); llama-server is driven over HTTP (streaming /completion with cache_prompt) from the bench process.",
    ...shortRequestNotes(r),
  );
  report.machineAfter = machineInfo();
  return report;
}

/** Where vllama's burst time went, per N (its best round). */
function profileTable(r: ConcurrentResults): string {
  return markdownTable(
    ["N", "burst wall ms", "steps", "tokens/step", "decode ms", "sample ms", "native other ms", "JS between steps ms", "JS per step ms"],
    r.parallels.map((n) => {
      const run = r.results["vllama"][n];
      const p = run?.profile;
      if (!p) return [n, "n/a", "", "", "", "", "", "", ""];
      return [n, run.best.wallMs.toFixed(0), p.steps, p.tokensPerStep.toFixed(1), p.decodeMs.toFixed(0), p.sampleMs.toFixed(0),
        p.nativeOtherMs.toFixed(0), p.betweenStepsMs.toFixed(0), (p.betweenStepsMs / Math.max(1, p.steps - 1)).toFixed(2)];
    }),
  );
}
