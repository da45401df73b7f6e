// Shared by the `engine` and `http` suites: N concurrent requests of distinct W-token prompts
// (a fixed number of generated tokens, EOS ignored) against several systems, each N x W in turn.
import { fixed, markdownTable } from "../lib/machine.js";
import { distinctPrompts, withTokenizer } from "../lib/prompts.js";
import { median } from "../lib/stats.js";
import type { SuiteContext } from "../lib/suite.js";
import { runInterleaved, type SystemRun, type SystemUnderTest } from "../lib/systems.js";

/** One measured load: `parallel` concurrent requests, each a distinct `promptTokens`-token prompt. */
export interface LoadCase {
  parallel: number;
  promptTokens: number;
  /** KV cells of one request (prompt + generated, rounded up); every system gets `parallel` times this. */
  cellsPerRequest: number;
  /** "8 x 1536": the row label and the key of the results. */
  label: string;
}

export interface ConcurrentResults {
  cases: LoadCase[];
  maxTokens: number;
  /** results[system name][case label] */
  results: Record<string, Record<string, SystemRun>>;
  commands: string[];
}

export const DEFAULT_PROMPT_TOKENS = [128];
/** KV cells are given per request in whole 256-cell units, as `llama-server -c N*256` did for 128-token prompts. */
const CELL_UNIT = 256;

function loadCases(parallels: number[], promptLengths: number[], maxTokens: number): LoadCase[] {
  return promptLengths.flatMap((promptTokens) => parallels.map((parallel) => ({
    parallel, promptTokens, cellsPerRequest: Math.ceil((promptTokens + maxTokens) / CELL_UNIT) * CELL_UNIT, label: `${parallel} x ${promptTokens}`,
  })));
}

export async function runConcurrent(s: SuiteContext, allSystems: SystemUnderTest[]): Promise<ConcurrentResults> {
  const systems = allSystems.filter((sys) => !s.skip?.includes(sys.name));
  const maxTokens = s.quick ? 16 : 64;
  const cases = loadCases(s.parallels ?? (s.quick ? [1, 4] : [1, 8, 32]), s.promptTokens ?? DEFAULT_PROMPT_TOKENS, maxTokens);
  const results: ConcurrentResults["results"] = Object.fromEntries(systems.map((sys) => [sys.name, {}]));
  const commands = new Set<string>();
  // A fresh prompt set per (case, system, round): no system sees a prompt twice.
  let salt = 1000;
  const promptSets = await withTokenizer(s.modelPath, s.backend, (m) =>
    cases.map((c) => systems.map(() => ({
      warmup: distinctPrompts(m, 1, c.promptTokens, salt++)[0],
      rounds: Array.from({ length: s.rounds }, () => distinctPrompts(m, c.parallel, c.promptTokens, salt++)),
    }))),
  );
  for (const [i, c] of cases.entries()) {
    s.log(`  ${c.label}: ${systems.map((sys) => sys.name).join(", ")}, ${s.rounds} round(s) interleaved`);
    const setup = {
      modelPath: s.modelPath, backend: s.backend, parallel: c.parallel, contextLength: c.cellsPerRequest, kvCells: c.parallel * c.cellsPerRequest, maxTokens,
    };
    const runs = await runInterleaved(systems.map((sys, j) => ({ ...sys, setup, prompts: promptSets[i][j] })));
    for (const sys of systems) {
      const run = runs[sys.name];
      results[sys.name][c.label] = run;
      if (run.command) commands.add(genericCommand(run.command));
      s.log(`    ${sys.name}: ${run.rounds.map((r) => fixed(r.tokensPerSecond)).join(" / ")} t/s, TTFT p50 ${fixed(run.ttftP50Ms, 0)} ms`);
    }
  }
  return { cases, maxTokens, results, commands: [...commands] };
}

/** One row per case: the cells every system got, then each system's tokens/s (best round) and TTFT p50 (every request of every round). */
export function throughputTable(r: ConcurrentResults, names: string[]): string {
  const header = ["N x prompt tokens", "KV cells (each system)", ...names.flatMap((n) => [`${n} t/s`, `${n} TTFT p50 ms`])];
  const rows = r.cases.map((c) => [c.label, c.parallel * c.cellsPerRequest, ...names.flatMap((name) => {
    const run = r.results[name][c.label];
    return [fixed(run?.best.tokensPerSecond), fixed(run?.ttftP50Ms, 0)];
  })]);
  return markdownTable(header, rows);
}

/**
 * Every round's tokens/s, in order: the best round alone hides a slowdown that only shows once
 * a system's caches are warm (later rounds run on what earlier rounds left behind).
 */
export function roundsTable(r: ConcurrentResults, names: string[]): string {
  return markdownTable(
    ["N x prompt tokens", ...names.map((n) => `${n} t/s, rounds in order`)],
    r.cases.map((c) => [c.label, ...names.map((name) => (r.results[name][c.label]?.rounds ?? []).map((x) => fixed(x.tokensPerSecond)).join(" / "))]),
  );
}

/**
 * The median over rounds of system `a`'s tokens/s over the fastest of `peers` in the same round.
 * Rounds interleave, so round r of each system ran minutes apart at most: the ratio of a pair
 * cancels the machine's drift, where the best round of each may come from different moments
 * (one lucky round decides a best-of ratio).
 */
export function pairedRatio(r: ConcurrentResults, a: string, peers: string[], c: LoadCase): number {
  const ra = r.results[a]?.[c.label]?.rounds ?? [];
  const peerRounds = peers.map((p) => r.results[p]?.[c.label]?.rounds ?? []);
  const rounds = Math.min(ra.length, ...peerRounds.map((x) => x.length));
  const pairs = ra.slice(0, rounds).map((x, i) => x.tokensPerSecond / Math.max(...peerRounds.map((p) => p[i].tokensPerSecond)));
  return median(pairs);
}

/** Of `peers`, the one with the higher tokens/s (best round) in this case: its TTFT is the one to match. */
export function fasterPeer(r: ConcurrentResults, peers: string[], c: LoadCase): string {
  return peers.reduce((a, b) => ((r.results[b]?.[c.label]?.best.tokensPerSecond ?? 0) > (r.results[a]?.[c.label]?.best.tokensPerSecond ?? 0) ? b : a));
}

/** Requests that stopped before the asked number of tokens (none expected: EOS is ignored). */
export function shortRequestNotes(r: ConcurrentResults): string[] {
  const notes: string[] = [];
  for (const [name, byCase] of Object.entries(r.results)) {
    for (const [label, run] of Object.entries(byCase)) {
      const short = run.rounds.reduce((a, x) => a + x.shortRequests, 0);
      if (short > 0) notes.push(`${name} ${label}: ${short} request(s) generated fewer than ${r.maxTokens} tokens`);
    }
  }
  return notes;
}

/** The note every concurrent suite prints on its load and its numbers. */
export function loadNote(r: ConcurrentResults, rounds: number): string {
  return `Prompts of exactly W tokens (distinct per request and per run, from the first word on), ${r.maxTokens} generated tokens (num_predict / n_predict, EOS ignored), temperature 0; every system gets the same KV cells: N x (W + ${r.maxTokens}) rounded up to a multiple of ${CELL_UNIT} per request (vllama: kvCells and contextLength; llama-server: -c, split into N slots per-slot, one pool with -kvu); tokens/s = (prompt + generated tokens) / wall time of the burst; a system's t/s is its best of ${rounds} round(s), and a ratio is first the median over rounds of the two systems' same-round ratio (robust to one lucky round), then in brackets the ratio of their best rounds; TTFT = request sent to first streamed chunk, p50 over every request of every round (at N = 1 a round is one request); rounds run after one warm-up request; all systems stay loaded and their rounds interleave (round 1 of each, then round 2 of each...), so drift in the machine's speed hits them alike.`;
}

/** A system's command with N and the cells in place of the numbers that change with the case. */
export function genericCommand(command: string): string {
  return command
    .replace(/-np \d+/, "-np N").replace(/-c \d+/, "-c <KV cells>")
    .replace(/sequences: \d+/, "sequences: N").replace(/contextSize: \d+/, "contextSize: <KV cells>/N")
    .replace(/parallel: \d+/, "parallel: N").replace(/kvCells: \d+/, "kvCells: <KV cells>").replace(/contextLength: \d+/, "contextLength: <KV cells>/N");
}
