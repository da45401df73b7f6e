// Suite `images`: N concurrent chat requests, each one image and a short question, against
// vllama's HTTP server and llama-server --mmproj (same release, same model and projector files):
// requests/s and TTFT p50. Two loads at each N: distinct images (every request's image is encoded
// and computed), and one image shared by all (vllama's prefix cache computes it once; the same
// server with the cache off shows what that is worth).
import { existsSync } from "node:fs";
import path from "node:path";
import { encodePng } from "../../test/helpers/images.js";
import { fixed, machineInfo, markdownTable, ratio } from "../lib/machine.js";
import { startReport, type SuiteReport } from "../lib/report.js";
import type { SuiteContext } from "../lib/suite.js";
import type { BenchPrompt } from "../lib/load.js";
import { genericCommand, shortRequestNotes } from "./concurrent.js";
import { LLAMA_SERVER_NAMES, LLAMA_SERVERS, openVllamaHttp, runInterleaved, type SystemRun, type SystemSetup } from "../lib/systems.js";

const THROUGHPUT_GOAL = 1.5;
const SHARED_TTFT_GOAL = 5;
/** KV cells per request: LLaVA-1.5's 576 image rows, the template and question, the answer, rounded up. */
const CELLS_PER_REQUEST = 1024;
/** Side of the generated images, in pixels: LLaVA-1.5's input size (each projector resizes to its own). */
const IMAGE_SIDE = 336;

/** The model and projector a vision suite runs: `dir` holds model.gguf and mmproj.gguf. */
export function visionFiles(dir: string): { model: string; projector: string } {
  const files = { model: path.join(dir, "model.gguf"), projector: path.join(dir, "mmproj.gguf") };
  if (!existsSync(files.model) || !existsSync(files.projector)) {
    throw new Error(`the images suite takes --model DIR, a folder holding model.gguf and mmproj.gguf (${dir} does not)`);
  }
  return files;
}

/** A gradient PNG whose colours follow `seed`: another seed, another image (and another content hash). */
function seededImage(seed: number): string {
  const png = encodePng(IMAGE_SIDE, IMAGE_SIDE, (x, y) => [(x + seed * 37) & 255, (y + seed * 91) & 255, (x * y + seed * 13) & 255]);
  return png.toString("base64");
}

interface ImageCase {
  parallel: number;
  shared: boolean;
  label: string;
}

/** `count` requests with distinct questions; one image for all, or one each. */
function imagePrompts(count: number, shared: boolean, salt: number): BenchPrompt[] {
  return Array.from({ length: count }, (_, i) => ({
    text: `Question ${salt}.${i}: what is in this picture?`,
    tokens: [],
    image: seededImage(shared ? salt : salt * 1000 + i),
  }));
}

const VLLAMA = "vllama";
const VLLAMA_NO_CACHE = "vllama, prefix cache off";

export async function imagesSuite(s: SuiteContext): Promise<SuiteReport> {
  const files = visionFiles(s.modelPath);
  const report = startReport("images", "images: N concurrent requests with one image each, vllama vs llama-server --mmproj", s.command);
  const maxTokens = s.quick ? 8 : 16;
  const cases: ImageCase[] = (s.parallels ?? (s.quick ? [2] : [8, 32])).flatMap((parallel) => [false, true].map((shared) => ({
    parallel, shared, label: `${parallel} x ${shared ? "one shared image" : "distinct images"}`,
  })));
  const systems = [
    { name: VLLAMA, open: openVllamaHttp, prefixCache: true },
    { name: VLLAMA_NO_CACHE, open: openVllamaHttp, prefixCache: false },
    ...LLAMA_SERVERS,
  ].filter((sys) => !s.skip?.includes(sys.name));
  const results: Record<string, Record<string, SystemRun>> = Object.fromEntries(systems.map((sys) => [sys.name, {}]));
  let salt = 1;
  for (const c of cases) {
    s.log(`  ${c.label}: ${systems.map((sys) => sys.name).join(", ")}, ${s.rounds} round(s) interleaved`);
    const setup: SystemSetup = {
      modelPath: files.model, projectorPath: files.projector, backend: s.backend, parallel: c.parallel,
      contextLength: CELLS_PER_REQUEST, kvCells: c.parallel * CELLS_PER_REQUEST, maxTokens,
    };
    const runs = await runInterleaved(systems.map((sys) => ({
      ...sys,
      setup: { ...setup, prefixCache: "prefixCache" in sys ? sys.prefixCache : undefined },
      // Each system its own images: no system is served from another's cache.
      prompts: { warmup: imagePrompts(1, false, salt++)[0]!, rounds: Array.from({ length: s.rounds }, () => imagePrompts(c.parallel, c.shared, salt++)) },
    })));
    for (const sys of systems) {
      const run = runs[sys.name]!;
      results[sys.name]![c.label] = run;
      if (run.command) report.peers.push(run.command);
      s.log(`    ${sys.name}: ${fixed(requestsPerSecond(run, c))} requests/s, TTFT p50 ${fixed(run.ttftP50Ms, 0)} ms (rounds: ${run.rounds.map((r) => fixed(r.ttftP50Ms, 0)).join(", ")})`);
    }
  }
  const names = systems.map((sys) => sys.name);
  report.peers.splice(0, report.peers.length, ...new Set(report.peers.map(genericCommand)));
  report.tables.push(markdownTable(
    ["N x images", ...names.flatMap((n) => [`${n} requests/s`, `${n} TTFT p50 ms`])],
    cases.map((c) => [c.label, ...names.flatMap((n) => [fixed(requestsPerSecond(results[n]![c.label], c), 2), fixed(results[n]![c.label]?.ttftP50Ms, 0)])]),
  ));
  const peers = LLAMA_SERVER_NAMES.filter((n) => results[n]);
  const fasterPeer = (c: ImageCase) => peers.reduce((a, b) => (requestsPerSecond(results[b]![c.label], c) > requestsPerSecond(results[a]![c.label], c) ? b : a));
  if (results[VLLAMA] && peers.length > 0) {
    report.tables.push(markdownTable(
      ["N x images", "requests/s vllama / faster llama-server", "TTFT p50 faster llama-server / vllama"],
      cases.map((c) => {
        const peer = fasterPeer(c);
        return [c.label, `${ratio(requestsPerSecond(results[VLLAMA]![c.label], c), requestsPerSecond(results[peer]![c.label], c))} (${peer})`,
          ratio(results[peer]![c.label]?.ttftP50Ms, results[VLLAMA]![c.label]?.ttftP50Ms)];
      }),
    ));
    for (const c of cases.filter((x) => !x.shared && x.parallel === 32)) {
      const measured = requestsPerSecond(results[VLLAMA]![c.label], c) / requestsPerSecond(results[fasterPeer(c)]![c.label], c);
      report.goals.push({ name: `${c.label}: requests/s vs llama-server`, target: `>= ${THROUGHPUT_GOAL}x`, measured: `${fixed(measured, 2)}x`, met: measured >= THROUGHPUT_GOAL });
    }
  }
  if (results[VLLAMA] && results[VLLAMA_NO_CACHE]) {
    for (const c of cases.filter((x) => x.shared && x.parallel === 32)) {
      const measured = results[VLLAMA_NO_CACHE]![c.label]!.ttftP50Ms / results[VLLAMA]![c.label]!.ttftP50Ms;
      report.goals.push({ name: `${c.label}: TTFT p50, prefix cache on vs off`, target: `>= ${SHARED_TTFT_GOAL}x better`, measured: `${fixed(measured, 2)}x`, met: measured >= SHARED_TTFT_GOAL });
    }
  }
  report.notes.push(
    `Each request: one ${IMAGE_SIDE} x ${IMAGE_SIDE} PNG (a seeded gradient) and a short distinct question as one user turn, through each server's chat API (vllama: /api/chat with images; llama-server: /v1/chat/completions with an image_url data URL), both applying the model's chat template; ${maxTokens} generated tokens (EOS ignored), temperature 0, streamed; ${CELLS_PER_REQUEST} KV cells per request for every system (llama-server: -c, per slot, or one pool with -kvu). requests/s = N / wall time of the burst (best of ${s.rounds} round(s)); TTFT = request sent to first streamed chunk, p50 over every request of every round. Every system gets its own images, so none is served from another's cache; the shared-image load shares one image within a burst only.`,
  );
  report.notes.push(...shortRequestNotes({ cases: [], maxTokens, results, commands: [] }));
  report.machineAfter = machineInfo();
  return report;
}

function requestsPerSecond(run: SystemRun | undefined, c: ImageCase): number {
  return run ? c.parallel / (run.best.wallMs / 1000) : NaN;
}
