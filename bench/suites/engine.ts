// Suite `engine`: vllama's in-process Engine vs llama-server over HTTP and node-llama-cpp
// in-process, N concurrent requests.
import { machineInfo, markdownTable, ratio } from "../lib/machine.js";
import { startReport, type SuiteReport } from "../lib/report.js";
import type { SuiteContext } from "../lib/suite.js";
import { openEngine, openLlamaServer, openNodeLlamaCpp } from "../lib/systems.js";
import { roundsTable, runConcurrent, shortRequestNotes, throughputTable, PROMPT_TOKENS, type ConcurrentResults } from "./concurrent.js";

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
  const at = (name: string, n: number) => r.results[name]?.[n]?.best;
  report.tables.push(markdownTable(
    ["N", "vllama / llama-server t/s", "vllama / node-llama-cpp t/s", "TTFT p50 vllama / llama-server"],
    r.parallels.map((n) => [
      n,
      ratio(at("vllama", n)?.tokensPerSecond, at("llama-server", n)?.tokensPerSecond),
      ratio(at("vllama", n)?.tokensPerSecond, at("node-llama-cpp", n)?.tokensPerSecond),
      ratio(at("vllama", n)?.ttftP50Ms, at("llama-server", n)?.ttftP50Ms),
    ]),
  ));
  report.tables.push(roundsTable(r, names));
  report.tables.push(profileTable(r));
  const top = Math.max(...r.parallels);
  const v = at("vllama", top)!;
  const ls = at("llama-server", top)!;
  const nl = at("node-llama-cpp", top);
  report.goals.push(
    { name: `N=${top} vllama / llama-server tokens/s`, target: ">= 1.1x", measured: ratio(v.tokensPerSecond, ls.tokensPerSecond), met: v.tokensPerSecond / ls.tokensPerSecond >= 1.1 },
    {
      name: `N=${top} vllama / node-llama-cpp tokens/s`, target: ">= 1.25x",
      measured: nl ? ratio(v.tokensPerSecond, nl.tokensPerSecond) : "not run (GPU)", met: nl && v.tokensPerSecond / nl.tokensPerSecond >= 1.25,
    },
    ...r.parallels.map((n) => {
      const a = at("vllama", n)!.ttftP50Ms;
      const b = at("llama-server", n)!.ttftP50Ms;
      return { name: `N=${n} TTFT p50 vllama vs llama-server`, target: "no worse (<= 1.0x)", measured: `${a.toFixed(0)} ms vs ${b.toFixed(0)} ms (${ratio(a, b)})`, met: a <= b };
    }),
  );
  report.notes.push(
    `${PROMPT_TOKENS}-token prompts (distinct per request and per run), ${r.maxTokens} generated tokens (num_predict / n_predict, EOS ignored), temperature 0; tokens/s = (prompt + generated tokens) / wall time of the burst; TTFT = request sent to first streamed chunk; best of ${s.rounds} round(s) after one warm-up request; all systems stay loaded and their rounds interleave (round 1 of each, then round 2 of each...), so drift in the machine's speed hits them alike.`,
    "The vllama profile wraps the Executor's run(), the only caller of the native step (bench/lib/step-profile.ts): decode and sample are the addon's own timings; 'native other' is the rest of the step call; 'JS between steps' is the gap from one step's end to the next step's start (scheduling, delivering tokens, streaming), gaps over 50 ms counted as idle.",
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
