// version, config and bench: the commands that need no running server (version asks it if it can).
import { readFileSync } from "node:fs";
import type { ConfigKey, LoadedConfig } from "../config.js";
import { ConnectionError, type Client } from "./client.js";
import { table } from "./format.js";
import { CliError, printJson, type Ui } from "./ui.js";

/** The package's version: package.json is two levels up from src/cli/ and from dist/cli/ alike. */
export function clientVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

export async function versionCommand(client: Client, ui: Ui): Promise<void> {
  const mine = clientVersion();
  let server: string | undefined;
  try {
    server = (await client.version()).version;
  } catch (err) {
    if (!(err instanceof ConnectionError)) throw err;
  }
  if (ui.json) return printJson(ui, { client: mine, server: server ?? null });
  if (server === undefined) {
    ui.stdout.write(`Warning: could not connect to a running vllama instance at ${client.baseUrl}\n`);
    ui.stdout.write(`Warning: client version is ${mine}\n`);
    return;
  }
  ui.stdout.write(`vllama version is ${server}\n`);
  if (server !== mine) ui.stdout.write(`Warning: client version is ${mine}\n`);
}

/** Config values for people: durations and lists readable, "forever" and "computed" spelled out. */
function displayValue(key: ConfigKey, value: unknown): string {
  if (value === undefined) return "(computed)";
  if (key === "keepAliveMs") return value === Infinity ? "forever" : `${Number(value) / 1000}s`;
  if (Array.isArray(value)) return value.join(",");
  return String(value);
}

export function configCommand(ui: Ui, { config, sources }: LoadedConfig): void {
  const keys = Object.keys(sources) as ConfigKey[];
  if (ui.json) {
    // JSON has no Infinity: a negative keep-alive means forever, as in Ollama.
    const values = { ...config, keepAliveMs: config.keepAliveMs === Infinity ? -1 : config.keepAliveMs };
    return printJson(ui, { config: values, sources });
  }
  const rows = keys.map((key) => [key, displayValue(key, config[key]), sources[key]]);
  ui.stdout.write(table([["KEY", "VALUE", "SOURCE"], ...rows]));
}

/** The benchmarks live in bench/ of a source checkout; an installed package has none. */
export async function benchCommand(args: Record<string, unknown>): Promise<void> {
  const modulePath = "../../bench/run.js";
  let bench: { runBench(args: Record<string, unknown>): Promise<unknown> };
  try {
    bench = (await import(modulePath)) as typeof bench;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ERR_MODULE_NOT_FOUND" && String((err as Error).message).includes("bench")) {
      throw new CliError("`vllama bench` needs the bench/ folder of a vllama source checkout (run it there with `npm run bench`)");
    }
    throw err;
  }
  await bench.runBench(args);
}
