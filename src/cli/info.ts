// version, config and bench: the commands that need no running server (version asks it if it can).
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ApiKey, ConfigKey, LoadedConfig } from "../config.js";
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
    const answer = await client.version();
    server = answer.vllama_version ?? answer.version; // an Ollama server has only `version`
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
  if (key === "apiKeys") return (value as ApiKey[]).map((k) => k.name).join(",") || "(none)"; // names, never keys
  if (Array.isArray(value)) return value.join(",");
  return String(value);
}

export function configCommand(ui: Ui, { config, sources }: LoadedConfig): void {
  const keys = Object.keys(sources) as ConfigKey[];
  if (ui.json) {
    // JSON has no Infinity: a negative keep-alive means forever, as in Ollama.
    const values = { ...config, keepAliveMs: config.keepAliveMs === Infinity ? -1 : config.keepAliveMs, apiKeys: config.apiKeys.map((k) => k.name) };
    return printJson(ui, { config: values, sources });
  }
  const rows = keys.map((key) => [key, displayValue(key, config[key]), sources[key]]);
  ui.stdout.write(table([["KEY", "VALUE", "SOURCE"], ...rows]));
}

/**
 * The benchmarks live in bench/ of a source checkout (TypeScript, run with tsx, a development
 * dependency); an installed package has none. Runs `bench/run.ts <suite> [options]` and returns
 * its exit code.
 */
export async function benchCommand(suiteAndOptions: string[]): Promise<number> {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
  const script = path.join(root, "bench", "run.ts");
  if (!existsSync(script)) {
    throw new CliError("`vllama bench` needs the bench/ folder of a vllama source checkout (git clone, npm install)");
  }
  const child = spawn(process.execPath, ["--import", "tsx", script, ...suiteAndOptions], { cwd: root, stdio: "inherit" });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
}
