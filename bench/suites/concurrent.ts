// Shared by the `engine` and `http` suites: N concurrent requests (128-token prompts, a fixed
// number of generated tokens, EOS ignored) against several systems, each N in turn.
import { fixed, markdownTable } from "../lib/machine.js";
import { distinctPrompts, withTokenizer } from "../lib/prompts.js";
import { median } from "../lib/stats.js";
import type { SuiteContext } from "../lib/suite.js";
import { runInterleaved, type SystemRun, type SystemUnderTest } from "../lib/systems.js";

export interface ConcurrentResults {
  parallels: number[];
  maxTokens: number;
  /** results[system name][N] */
  results: Record<string, Record<number, SystemRun>>;
  commands: string[];
}

export const PROMPT_TOKENS = 128;
/** KV cells per request, as `llama-server -c N*256`. */
export const CELLS_PER_REQUEST = 256;

export async function runConcurrent(s: SuiteContext, systems: SystemUnderTest[]): Promise<ConcurrentResults> {
  const parallels = s.parallels ?? (s.quick ? [1, 4] : [1, 8, 32]);
  const maxTokens = s.quick ? 16 : 64;
  const results: ConcurrentResults["results"] = Object.fromEntries(systems.map((sys) => [sys.name, {}]));
  const commands = new Set<string>();
  // A fresh prompt set per (N, system, round): no system sees a prompt twice.
  let salt = 1000;
  const promptSets = await withTokenizer(s.modelPath, s.backend, (m) =>
    parallels.map((n) => systems.map(() => ({
      warmup: distinctPrompts(m, 1, PROMPT_TOKENS, salt++)[0],
      rounds: Array.from({ length: s.rounds }, () => distinctPrompts(m, n, PROMPT_TOKENS, salt++)),
    }))),
  );
  for (const [i, n] of parallels.entries()) {
    s.log(`  N=${n}: ${systems.map((sys) => sys.name).join(", ")}, ${s.rounds} round(s) interleaved`);
    const setup = { modelPath: s.modelPath, backend: s.backend, parallel: n, kvCells: n * CELLS_PER_REQUEST, maxTokens };
    const runs = await runInterleaved(systems.map((sys, j) => ({ ...sys, setup, prompts: promptSets[i][j] })));
    for (const sys of systems) {
      const run = runs[sys.name];
      results[sys.name][n] = run;
      if (run.command) commands.add(genericCommand(run.command));
      s.log(`    ${sys.name}: ${run.rounds.map((r) => fixed(r.tokensPerSecond)).join(" / ")} t/s, TTFT p50 ${fixed(run.ttftP50Ms, 0)} ms`);
    }
  }
  return { parallels, maxTokens, results, commands: [...commands] };
}

/** One row per N: each system's tokens/s (best round) and TTFT p50 (every request of every round). */
export function throughputTable(r: ConcurrentResults, names: string[]): string {
  const header = ["N", ...names.flatMap((n) => [`${n} t/s`, `${n} TTFT p50 ms`])];
  const rows = r.parallels.map((n) => [n, ...names.flatMap((name) => {
    const run = r.results[name][n];
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
    ["N", ...names.map((n) => `${n} t/s, rounds in order`)],
    r.parallels.map((n) => [n, ...names.map((name) => (r.results[name][n]?.rounds ?? []).map((x) => fixed(x.tokensPerSecond)).join(" / "))]),
  );
}

/**
 * The median over rounds of system `a`'s tokens/s over system `b`'s in the same round. Rounds
 * interleave, so round r of each system ran minutes apart at most: the ratio of a pair cancels
 * the machine's drift, where the best round of each may come from different moments (one lucky
 * round decides a best-of ratio).
 */
export function pairedRatio(r: ConcurrentResults, a: string, b: string, n: number): number {
  const ra = r.results[a]?.[n]?.rounds ?? [];
  const rb = r.results[b]?.[n]?.rounds ?? [];
  const pairs = ra.slice(0, rb.length).map((x, i) => x.tokensPerSecond / rb[i].tokensPerSecond);
  return median(pairs);
}

/** Requests that stopped before the asked number of tokens (none expected: EOS is ignored). */
export function shortRequestNotes(r: ConcurrentResults): string[] {
  const notes: string[] = [];
  for (const [name, byN] of Object.entries(r.results)) {
    for (const [n, run] of Object.entries(byN)) {
      const short = run.rounds.reduce((a, x) => a + x.shortRequests, 0);
      if (short > 0) notes.push(`${name} N=${n}: ${short} request(s) generated fewer than ${r.maxTokens} tokens`);
    }
  }
  return notes;
}

/** A system's command with N in place of the numbers that change with N. */
function genericCommand(command: string): string {
  return command
    .replace(/-np \d+/, "-np N").replace(/-c \d+/, "-c N*256")
    .replace(/sequences: \d+/, "sequences: N").replace(/parallel: \d+/, "parallel: N").replace(/kvCells: \d+/, "kvCells: N*256");
}
