// Side-by-side benchmarks of vllama against llama.cpp (llama-batched-bench, llama-server) and
// node-llama-cpp, all in one run so the ratios are fair:
//   node --import tsx bench/run.ts <native|engine|prefix|http|rpc|images|choices|all> [--quick] [--rounds N] [--model PATH]
//     [--gpu auto|cuda|cpu] [--parallel 1,8,32] [--prompt-tokens 128,1024,4096] [--skip node-llama-cpp]
// Each suite prints a markdown report (command, machine, load, tables, ratios vs the goals).
// `runBench(args)` is the same for the CLI's `vllama bench`.
import { existsSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { writeSyntheticVisionModel } from "../src/gguf/synthetic-projector.js";
import { writeSyntheticModel } from "../src/gguf/synthetic.js";
import { initBackend, type BackendInfo, type GpuChoice } from "../src/native/index.js";
import { repoRoot } from "./lib/llama-cpp.js";
import { renderReport, type SuiteReport } from "./lib/report.js";
import type { SuiteContext } from "./lib/suite.js";
import { choicesSuite } from "./suites/choices.js";
import { engineSuite } from "./suites/engine.js";
import { httpSuite } from "./suites/http.js";
import { imagesSuite } from "./suites/images.js";
import { nativeSuite } from "./suites/native.js";
import { prefixSuite } from "./suites/prefix.js";
import { rpcSuite } from "./suites/rpc.js";

export const SUITES = {
  native: nativeSuite,
  engine: engineSuite,
  prefix: prefixSuite,
  http: httpSuite,
  rpc: rpcSuite,
  images: imagesSuite,
  choices: choicesSuite,
} satisfies Record<string, (s: SuiteContext) => Promise<SuiteReport>>;

export type SuiteName = keyof typeof SUITES;

export interface BenchArgs {
  suite: SuiteName | "all";
  quick?: boolean;
  /** Rounds per measurement (best is reported); default 2 (1 for `prefix`, whose bursts are long), 1 with `quick`. */
  rounds?: number;
  /**
   * GGUF to benchmark; default a random-weight llama110m Q8_0 under .bench/ (written if missing). The
   * images suite takes a folder holding model.gguf and mmproj.gguf; default the tiny-vision pair under .bench/.
   */
  model?: string;
  /** Backend for vllama and the llama.cpp peers; default "auto" (CUDA where the addon has it). */
  gpu?: GpuChoice;
  /** Concurrency levels to measure instead of each suite's own (native, engine, http). */
  parallel?: number[];
  /** Prompt lengths in tokens to measure at each concurrency level instead of 128 (engine, http). */
  promptTokens?: number[];
  /** Systems to leave out by name (engine, http). */
  skip?: string[];
  /** Receives each suite's markdown report as it finishes; default stdout. */
  print?: (markdown: string) => void;
  /** Progress lines; default stderr. */
  log?: (line: string) => void;
}

export const DEFAULT_MODEL = path.join(repoRoot, ".bench/llama110m-q8_0.gguf");
/** The images suite's default: a folder with the tiny-vision pair (model.gguf, mmproj.gguf). */
export const DEFAULT_VISION_MODEL = path.join(repoRoot, ".bench/tiny-vision");

async function ensureDefaultModel(log: (line: string) => void): Promise<string> {
  if (existsSync(DEFAULT_MODEL)) return DEFAULT_MODEL;
  log(`writing ${DEFAULT_MODEL} (random llama110m, Q8_0)`);
  await mkdir(path.dirname(DEFAULT_MODEL), { recursive: true });
  await writeSyntheticModel({ preset: "llama110m", type: "q8_0", out: DEFAULT_MODEL });
  return DEFAULT_MODEL;
}

async function ensureDefaultVisionModel(log: (line: string) => void): Promise<string> {
  if (existsSync(path.join(DEFAULT_VISION_MODEL, "mmproj.gguf"))) return DEFAULT_VISION_MODEL;
  log(`writing ${DEFAULT_VISION_MODEL} (the random tiny-vision pair, F32)`);
  await writeSyntheticVisionModel({ preset: "tiny-vision", type: "f32", dir: DEFAULT_VISION_MODEL });
  return DEFAULT_VISION_MODEL;
}

/** `--model` names a GGUF, or for the images suite a folder holding model.gguf and mmproj.gguf. */
async function modelFor(suite: SuiteName, model: string | undefined, log: (line: string) => void): Promise<string> {
  const given = model ? path.resolve(model) : undefined;
  const folder = given !== undefined && existsSync(given) && statSync(given).isDirectory();
  if (suite === "images") return folder ? given : await ensureDefaultVisionModel(log);
  if (folder) throw new Error(`suite ${suite} takes --model FILE.gguf, not a folder`);
  if (given !== undefined && !existsSync(given)) throw new Error(`model '${given}' not found`);
  return given ?? (await ensureDefaultModel(log));
}

function describeBackend(info: BackendInfo): string {
  const gpus = info.devices.filter((d) => d.type === "gpu").map((d) => `${d.description}, ${(d.memoryTotal / 2 ** 30).toFixed(0)} GiB`);
  return info.backend === "cuda" ? `cuda (${gpus.join("; ")})` : "cpu";
}

function isSuite(name: string): name is SuiteName | "all" {
  return name === "all" || Object.hasOwn(SUITES, name);
}

/** Runs one suite (or all) and returns their reports. */
export async function runBench(args: BenchArgs): Promise<SuiteReport[]> {
  if (!isSuite(args.suite)) throw new Error(`unknown suite '${args.suite}': one of ${[...Object.keys(SUITES), "all"].join(", ")}`);
  if (args.rounds !== undefined && !(Number.isInteger(args.rounds) && args.rounds >= 1)) throw new Error("rounds must be a positive integer");
  const positiveIntegers = (list: number[] | undefined) => list === undefined || (list.length > 0 && list.every((n) => Number.isInteger(n) && n >= 1));
  if (!positiveIntegers(args.parallel)) throw new Error("parallel must be a list of positive integers, e.g. 1,8,32");
  if (!positiveIntegers(args.promptTokens)) throw new Error("prompt-tokens must be a list of positive integers, e.g. 128,1024,4096");
  const backendInfo = initBackend(args.gpu ?? "auto");
  const log = args.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const print = args.print ?? ((md: string) => process.stdout.write(`${md}\n`));
  const quick = args.quick ?? false;
  const names = args.suite === "all" ? (Object.keys(SUITES) as SuiteName[]) : [args.suite];
  const reports: SuiteReport[] = [];
  for (const name of names) {
    const command = ["node --import tsx bench/run.ts", name, quick ? "--quick" : "", args.rounds ? `--rounds ${args.rounds}` : "", args.model ? `--model ${args.model}` : "",
      args.gpu ? `--gpu ${args.gpu}` : "", args.parallel ? `--parallel ${args.parallel.join(",")}` : "",
      args.promptTokens ? `--prompt-tokens ${args.promptTokens.join(",")}` : "", args.skip?.length ? `--skip ${args.skip.join(",")}` : ""].filter(Boolean).join(" ");
    log(`suite ${name}${quick ? " (quick)" : ""}`);
    const rounds = args.rounds ?? (quick || name === "prefix" ? 1 : 2);
    const modelPath = await modelFor(name, args.model, log);
    const report = await SUITES[name]({ modelPath, backend: backendInfo.backend, parallels: args.parallel, promptTokens: args.promptTokens, skip: args.skip, quick, rounds, command, log });
    report.backend = describeBackend(backendInfo);
    print(renderReport(report));
    reports.push(report);
  }
  return reports;
}

async function main(argv: string[]): Promise<void> {
  const { default: yargs } = await import("yargs");
  const parsed = await yargs(argv)
    .usage("$0 <suite> [--quick]")
    .command("$0 <suite>", "run a benchmark suite", (y) =>
      y.positional("suite", { choices: [...Object.keys(SUITES), "all"], demandOption: true, describe: "which suite" }))
    .option("quick", { type: "boolean", default: false, describe: "a smaller run, for smoke-testing" })
    .option("rounds", { type: "number", describe: "rounds per measurement (the best is reported)" })
    .option("model", { type: "string", describe: "GGUF model (default: a random llama110m Q8_0 under .bench/); for images, a folder with model.gguf and mmproj.gguf" })
    .option("gpu", { choices: ["auto", "cuda", "cpu"] as const, describe: "backend for vllama and the llama.cpp peers (default auto)" })
    .option("parallel", { type: "string", describe: "concurrency levels to measure, e.g. 1,8,32,64" })
    .option("prompt-tokens", { type: "string", describe: "prompt lengths to measure at each level (engine, http), e.g. 128,1024,4096" })
    .option("skip", { type: "string", describe: "systems to leave out (engine, http), e.g. node-llama-cpp" })
    .strict()
    .parse();
  const numbers = (list: string | undefined) => list?.split(",").map((n) => Number(n.trim()));
  await runBench({
    suite: parsed.suite as SuiteName | "all", quick: parsed.quick, rounds: parsed.rounds, model: parsed.model, gpu: parsed.gpu,
    parallel: numbers(parsed.parallel), promptTokens: numbers(parsed.promptTokens), skip: parsed.skip?.split(",").map((name) => name.trim()),
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error) => {
    console.error(`bench: ${(error as Error).message}`);
    process.exitCode = 1;
  });
}
