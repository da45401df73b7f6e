// Suite `http`: the `engine` suite through vllama's HTTP server. The in-process ratio to
// llama-server must survive HTTP: (HTTP vllama / llama-server) / (in-process vllama / llama-server).
import { machineInfo, markdownTable, ratio } from "../lib/machine.js";
import { startReport, type SuiteReport } from "../lib/report.js";
import type { SuiteContext } from "../lib/suite.js";
import { openEngine, openLlamaServer, openVllamaHttp } from "../lib/systems.js";
import { pairedRatio, roundsTable, runConcurrent, shortRequestNotes, throughputTable } from "./concurrent.js";

const GOAL = 0.95;

export async function httpSuite(s: SuiteContext): Promise<SuiteReport> {
  const report = startReport("http", "http: vllama's HTTP server vs in-process Engine and llama-server", s.command);
  const r = await runConcurrent(s, [
    { name: "vllama HTTP", open: openVllamaHttp },
    { name: "vllama in-process", open: openEngine },
    { name: "llama-server", open: openLlamaServer },
  ]);
  report.peers.push(...r.commands);
  report.tables.push(throughputTable(r, ["vllama HTTP", "vllama in-process", "llama-server"]));
  const tps = (name: string, n: number) => r.results[name][n]?.best.tokensPerSecond ?? NaN;
  // Paired per round, as in the engine suite: (HTTP / llama-server) / (in-process / llama-server)
  // of one round is HTTP / in-process of that round.
  const rows = r.parallels.map((n) => ({
    n,
    httpRatio: pairedRatio(r, "vllama HTTP", "llama-server", n),
    inprocRatio: pairedRatio(r, "vllama in-process", "llama-server", n),
    kept: pairedRatio(r, "vllama HTTP", "vllama in-process", n),
  }));
  report.tables.push(markdownTable(
    ["N", "HTTP vllama / llama-server", "in-process vllama / llama-server", "kept over HTTP (HTTP / in-process)", "best rounds: HTTP / in-process"],
    rows.map((x) => [x.n, `${x.httpRatio.toFixed(2)}x`, `${x.inprocRatio.toFixed(2)}x`, `${x.kept.toFixed(2)}x`, ratio(tps("vllama HTTP", x.n), tps("vllama in-process", x.n))]),
  ));
  report.tables.push(roundsTable(r, ["vllama HTTP", "vllama in-process", "llama-server"]));
  for (const x of rows) {
    report.goals.push({ name: `N=${x.n} ratio kept over HTTP`, target: `>= ${GOAL}x`, measured: `${x.kept.toFixed(2)}x`, met: x.kept >= GOAL });
  }
  report.notes.push(
    "Same load as the `engine` suite, rounds interleaved across the three systems; ratios are medians of same-round ratios. vllama's server runs in a child process (the Engine and Express app of `vllama serve`, logging off); the bench process is the HTTP client for both servers (streaming NDJSON / SSE).",
    ...shortRequestNotes(r),
  );
  report.machineAfter = machineInfo();
  return report;
}
