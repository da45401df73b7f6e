// Suite `http`: the `engine` suite through vllama's HTTP server. The in-process ratio to
// llama-server must survive HTTP: (HTTP vllama / llama-server) / (in-process vllama / llama-server).
import { machineInfo, markdownTable, ratio } from "../lib/machine.js";
import { startReport, type SuiteReport } from "../lib/report.js";
import type { SuiteContext } from "../lib/suite.js";
import { LLAMA_SERVER_NAMES, LLAMA_SERVERS, openEngine, openVllamaHttp } from "../lib/systems.js";
import { fasterPeer, loadNote, pairedRatio, roundsTable, runConcurrent, shortRequestNotes, throughputTable } from "./concurrent.js";

const GOAL = 0.95;
export async function httpSuite(s: SuiteContext): Promise<SuiteReport> {
  const report = startReport("http", "http: vllama's HTTP server vs in-process Engine and llama-server (per-slot and -kvu)", s.command);
  const r = await runConcurrent(s, [
    { name: "vllama HTTP", open: openVllamaHttp },
    { name: "vllama in-process", open: openEngine },
    ...LLAMA_SERVERS,
  ]);
  const names = ["vllama HTTP", "vllama in-process", ...LLAMA_SERVER_NAMES].filter((name) => r.results[name]);
  report.peers.push(...r.commands);
  report.tables.push(throughputTable(r, names));
  const tps = (name: string, label: string) => r.results[name][label]?.best.tokensPerSecond ?? NaN;
  const ttft = (name: string, label: string) => r.results[name][label]?.ttftP50Ms ?? NaN;
  // Paired per round, as in the engine suite: (HTTP / llama-server) / (in-process / llama-server)
  // of one round is HTTP / in-process of that round.
  const rows = r.cases.map((c) => ({
    c,
    httpRatio: pairedRatio(r, "vllama HTTP", LLAMA_SERVER_NAMES, c),
    inprocRatio: pairedRatio(r, "vllama in-process", LLAMA_SERVER_NAMES, c),
    kept: pairedRatio(r, "vllama HTTP", ["vllama in-process"], c),
    faster: fasterPeer(r, LLAMA_SERVER_NAMES, c),
  }));
  report.tables.push(markdownTable(
    ["N x prompt tokens", "HTTP vllama / faster llama-server", "in-process vllama / faster llama-server", "kept over HTTP (HTTP / in-process)", "best rounds: HTTP / in-process", "TTFT p50 HTTP vllama / faster llama-server"],
    rows.map((x) => [x.c.label, `${x.httpRatio.toFixed(2)}x`, `${x.inprocRatio.toFixed(2)}x`, `${x.kept.toFixed(2)}x`,
      ratio(tps("vllama HTTP", x.c.label), tps("vllama in-process", x.c.label)), `${ratio(ttft("vllama HTTP", x.c.label), ttft(x.faster, x.c.label))} (${x.faster})`]),
  ));
  report.tables.push(roundsTable(r, names));
  for (const x of rows) {
    report.goals.push({ name: `${x.c.label} ratio kept over HTTP`, target: `>= ${GOAL}x`, measured: `${x.kept.toFixed(2)}x`, met: x.kept >= GOAL });
  }
  report.notes.push(
    loadNote(r, s.rounds),
    "Same load as the `engine` suite, rounds interleaved across the four systems; ratios against llama-server take, round by round, the faster of its two KV layouts (per-slot -np N -c cells, and -kvu). vllama's server runs in a child process (the Engine and Express app of `vllama serve`, logging off); the bench process is the HTTP client for both servers (streaming NDJSON / SSE).",
    ...shortRequestNotes(r),
  );
  report.machineAfter = machineInfo();
  return report;
}
