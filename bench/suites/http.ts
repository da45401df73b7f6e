// Suite `http`: the `engine` suite through vllama's HTTP server. The in-process ratio to
// llama-server must survive HTTP: (HTTP vllama / llama-server) / (in-process vllama / llama-server).
import { machineInfo, markdownTable, ratio } from "../lib/machine.js";
import { startReport, type SuiteReport } from "../lib/report.js";
import type { SuiteContext } from "../lib/suite.js";
import { openEngine, openLlamaServer, openVllamaHttp } from "../lib/systems.js";
import { roundsTable, runConcurrent, shortRequestNotes, throughputTable } from "./concurrent.js";

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
  const rows = r.parallels.map((n) => {
    const httpRatio = tps("vllama HTTP", n) / tps("llama-server", n);
    const inprocRatio = tps("vllama in-process", n) / tps("llama-server", n);
    return { n, httpRatio, inprocRatio, kept: httpRatio / inprocRatio };
  });
  report.tables.push(markdownTable(
    ["N", "HTTP vllama / llama-server", "in-process vllama / llama-server", "kept over HTTP", "HTTP / in-process t/s"],
    rows.map((x) => [x.n, `${x.httpRatio.toFixed(2)}x`, `${x.inprocRatio.toFixed(2)}x`, `${x.kept.toFixed(2)}x`, ratio(tps("vllama HTTP", x.n), tps("vllama in-process", x.n))]),
  ));
  report.tables.push(roundsTable(r, ["vllama HTTP", "vllama in-process", "llama-server"]));
  for (const x of rows) {
    report.goals.push({ name: `N=${x.n} ratio kept over HTTP`, target: `>= ${GOAL}x`, measured: `${x.kept.toFixed(2)}x`, met: x.kept >= GOAL });
  }
  report.notes.push(
    "Same load as the `engine` suite, rounds interleaved across the three systems. vllama's server runs in a child process (the Engine and Express app of `vllama serve`, logging off); the bench process is the HTTP client for both servers (streaming NDJSON / SSE).",
    ...shortRequestNotes(r),
  );
  report.machineAfter = machineInfo();
  return report;
}
