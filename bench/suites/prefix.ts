// Suite `prefix`: a burst of requests sharing a long prefix. vllama with its prefix cache on
// computes the prefix once and shares its KV cells; off, and llama-server (per-slot
// cache_prompt), compute it once per request.
import { fixed, machineInfo, markdownTable, ratio } from "../lib/machine.js";
import { sharedPrefixPrompts, withTokenizer } from "../lib/prompts.js";
import { startReport, type SuiteReport } from "../lib/report.js";
import type { SuiteContext } from "../lib/suite.js";
import { openEngine, openLlamaServer, runInterleaved, type SystemRun } from "../lib/systems.js";

const GOAL = 5;

export async function prefixSuite(s: SuiteContext): Promise<SuiteReport> {
  const requests = s.quick ? 8 : 32;
  const prefixTokens = s.quick ? 256 : 1000;
  const maxTokens = 16;
  const report = startReport("prefix", "prefix: shared-prefix burst, TTFT", s.command);
  // Room for every request's full prompt at once, so the cache-off run is not starved of cells.
  const kvCells = requests * (Math.ceil((prefixTokens + 64 + maxTokens) / 256) * 256);
  let salt = 50;
  const systems = [
    { name: "vllama, prefix cache on", open: openEngine, prefixCache: true },
    { name: "vllama, prefix cache off", open: openEngine, prefixCache: false },
    { name: "llama-server", open: openLlamaServer("unified") },
  ];
  // Each system gets its own prefix: every burst starts cold.
  const prompts = await withTokenizer(s.modelPath, s.backend, (m) => systems.map(() => ({
    warmup: sharedPrefixPrompts(m, 1, 64, salt++)[0],
    rounds: Array.from({ length: s.rounds }, () => sharedPrefixPrompts(m, requests, prefixTokens, salt++)),
  })));
  const promptLengths = prompts.flatMap((p) => p.rounds.flat().map((x) => x.tokens.length));
  s.log(`  ${systems.map((sys) => sys.name).join(", ")}, ${s.rounds} round(s) interleaved`);
  const results: Record<string, SystemRun> = await runInterleaved(systems.map((sys, i) => ({
    ...sys,
    setup: { modelPath: s.modelPath, backend: s.backend, parallel: requests, kvCells, maxTokens, prefixCache: sys.prefixCache },
    prompts: prompts[i],
  })));
  for (const sys of systems) {
    const run = results[sys.name];
    if (run.command) report.peers.push(run.command);
    s.log(`    ${sys.name}: TTFT p50 ${fixed(run.best.ttftP50Ms, 0)} ms, p90 ${fixed(run.best.ttftP90Ms, 0)} ms`);
  }
  // Lower TTFT is better: pick each system's round with the best p50.
  const bestTtft = (run: SystemRun) => run.rounds.reduce((a, b) => (b.ttftP50Ms < a.ttftP50Ms ? b : a));
  const on = bestTtft(results["vllama, prefix cache on"]);
  const off = bestTtft(results["vllama, prefix cache off"]);
  const server = bestTtft(results["llama-server"]);
  report.tables.push(markdownTable(
    ["system", "TTFT p50 ms", "TTFT p90 ms", "burst wall s", "total t/s"],
    systems.map((sys) => {
      const b = bestTtft(results[sys.name]);
      return [sys.name, fixed(b.ttftP50Ms, 0), fixed(b.ttftP90Ms, 0), fixed(b.wallMs / 1000, 1), fixed(b.tokensPerSecond)];
    }),
  ));
  report.tables.push(markdownTable(
    ["comparison", "TTFT p50", "TTFT p90"],
    [
      ["off / on (how much better on is)", ratio(off.ttftP50Ms, on.ttftP50Ms), ratio(off.ttftP90Ms, on.ttftP90Ms)],
      ["llama-server / vllama on", ratio(server.ttftP50Ms, on.ttftP50Ms), ratio(server.ttftP90Ms, on.ttftP90Ms)],
    ],
  ));
  report.goals.push({
    name: "TTFT p50, prefix cache on vs off", target: `>= ${GOAL}x better`,
    measured: ratio(off.ttftP50Ms, on.ttftP50Ms), met: off.ttftP50Ms / on.ttftP50Ms >= GOAL,
  });
  const promptLength = `${Math.min(...promptLengths)}-${Math.max(...promptLengths)}`;
  report.notes.push(
    `${requests} requests sent at once, each a common ${prefixTokens}-token prefix + a short distinct question (${promptLength} tokens in all), ${maxTokens} generated tokens, EOS ignored; KV cache ${kvCells} cells for every system; each system gets its own prefix, so every burst is cold; best of ${s.rounds} round(s), interleaved across the systems.`,
  );
  report.machineAfter = machineInfo();
  return report;
}
