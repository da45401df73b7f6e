#!/usr/bin/env node
// The `vllama` command line. Like `ollama`, every command except serve, worker, config and version is
// an HTTP client of a running `vllama serve`. Exit codes: 0 ok, 1 runtime error, 2 bad usage.
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import yargs, { type Argv } from "yargs";
import { hideBin } from "yargs/helpers";
import { ConfigError, configFlags, loadConfig, type ConfigKey, type LoadedConfig, type RawValue } from "../config.js";
import { Client } from "./client.js";
import { benchCommand, configCommand, versionCommand } from "./info.js";
import {
  cpCommand, createCommand, listCommand, psCommand, pullCommand, pushCommand, rmCommand, SHOW_FIELDS, showCommand, type ShowField,
  stopCommand,
} from "./models.js";
import { runCommand } from "./run.js";
import { serveCommand } from "./serve.js";
import { workerCommand, workerOptions } from "./worker.js";
import { CliError, createUi, EXIT_OK, exitCodeOf, processIo, renderError, UsageError, type Io, type Ui } from "./ui.js";

interface GlobalArgs {
  host?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  color?: boolean;
  [key: string]: unknown;
}

/** Flags named after config keys (host, and serve's own) as loadConfig reads them. */
function loadCliConfig(argv: GlobalArgs, env: NodeJS.ProcessEnv): LoadedConfig {
  const flags: Partial<Record<ConfigKey, RawValue>> = {};
  for (const key of ["host", ...configFlags().map((f) => f.key)] as ConfigKey[]) {
    const value = argv[key];
    if (value !== undefined) flags[key] = value as RawValue;
  }
  try {
    return loadConfig({ flags, env });
  } catch (err) {
    if (err instanceof ConfigError && err.origin === "flag") throw new UsageError(err.message, { cause: err });
    throw err;
  }
}

/** Settings whose bare flag means on and whose `--no-` flag means off. */
const ON_OFF_FLAGS = new Set<ConfigKey>(["prefixCache", "remoteImages"]);

/** serve and config take every server setting as a flag. */
function withServerFlags<T>(y: Argv<T>): Argv<T> {
  let out = y;
  for (const { key, flag, flagAliases = [], env, accepted } of configFlags()) {
    const envNote = env.length > 0 ? ` [env: ${env.join(", ")}]` : "";
    // Strings, validated by loadConfig; a bare `--prefix-cache` means on, `--no-prefix-cache` off.
    const coerce = ON_OFF_FLAGS.has(key) ? (v: unknown) => (v === "" ? true : v) : undefined;
    const alias = flagAliases.map((a) => a.slice(2));
    out = out.option(flag.slice(2), { type: "string", alias, coerce, describe: `${accepted}${envNote}` });
  }
  return out.group(configFlags().map((f) => f.flag.slice(2)), "Server settings:");
}

function buildParser(argv: string[], io: Io, ui: { current: Ui }): Argv<GlobalArgs> {
  // Every handler receives the parsed global flags: it makes the Ui from them before anything prints.
  const withUi = <A extends GlobalArgs>(handler: (args: A, ui: Ui) => Promise<void> | void) => async (args: A) => {
    ui.current = createUi(args, io);
    await handler(args, ui.current);
  };
  const configOf = (args: GlobalArgs) => loadCliConfig(args, io.env);
  const clientFrom = (args: GlobalArgs) => new Client(configOf(args).clientUrl);
  return yargs(argv)
    .scriptName("vllama")
    .usage("Usage: $0 <command> [options]\n\nOllama's API and CLI with continuous batching, on llama.cpp.")
    .option("host", { type: "string", describe: "server address host[:port] [env: OLLAMA_HOST]", global: true })
    .option("json", { type: "boolean", describe: "machine-readable output (list, ps, show, pull, version, config)", global: true })
    .option("quiet", { type: "boolean", describe: "print nothing but results and errors", global: true })
    .option("verbose", { type: "boolean", describe: "stack traces on errors; timings after run", global: true })
    .option("color", { type: "boolean", default: true, describe: "colors (--no-color or NO_COLOR to disable)", global: true })
    .command("serve", "Start the vllama server", (y) => withServerFlags(y), withUi((args, ui) => serveCommand(ui, configOf(args))))
    .command(
      "worker",
      "Serve a share of a model's layers to `vllama serve --rpc` (llama.cpp's rpc-server; no authentication: private networks only)",
      (y) =>
        y
          .option("port", { type: "string", describe: "port to listen on (default 50052)" })
          .option("mem", { type: "string", describe: "MiB of memory to offer (default: the machine's free memory); serve --rpc splits layers by it" })
          .option("threads", { type: "string", describe: "CPU threads (default: half the cores)" })
          .epilogue("--host is the IPv4 address to bind (default 127.0.0.1)."),
      withUi((args, ui) => workerCommand(ui, workerOptions(args))),
    )
    .command(
      "run <model> [prompt..]",
      "Run a model: chat in a terminal, or answer one prompt (argument or stdin)",
      (y) =>
        y
          .positional("model", { type: "string", demandOption: true })
          .positional("prompt", { type: "string", array: true })
          .option("format", { type: "string", choices: ["json"], describe: "response format" })
          .option("keepalive", { type: "string", describe: 'how long the model stays loaded, e.g. "5m"' })
          .option("nowordwrap", { type: "boolean", describe: "do not wrap words at the terminal edge" }),
      withUi((args, ui) =>
        runCommand(clientFrom(args), ui, {
          model: args.model as string,
          prompt: (args.prompt as string[] | undefined) ?? [],
          format: args.format as "json" | undefined,
          keepAlive: args.keepalive as string | undefined,
          wordWrap: args.nowordwrap !== true,
          stdin: io.stdin,
        }),
      ),
    )
    .command(
      "pull <model>",
      "Pull a model from a registry",
      (y) => y.positional("model", { type: "string", demandOption: true }).option("insecure", { type: "boolean" }),
      withUi((args, ui) => pullCommand(clientFrom(args), ui, args.model as string, args.insecure === true)),
    )
    .command(
      "push <model>",
      "Push a model to a registry",
      (y) => y.positional("model", { type: "string", demandOption: true }).option("insecure", { type: "boolean" }),
      withUi((args, ui) => pushCommand(clientFrom(args), ui, args.model as string, args.insecure === true)),
    )
    .command(["list", "ls"], "List models", (y) => y, withUi((args, ui) => listCommand(clientFrom(args), ui)))
    .command("ps", "List running models", (y) => y, withUi((args, ui) => psCommand(clientFrom(args), ui)))
    .command(
      "show <model>",
      "Show information for a model",
      (y) => {
        let out = y.positional("model", { type: "string", demandOption: true });
        for (const field of SHOW_FIELDS) out = out.option(field, { type: "boolean", describe: `show the ${field}` });
        return out.option("verify", { type: "boolean", describe: "check every blob of the model against its sha256 digest" });
      },
      withUi((args, ui) =>
        showCommand(clientFrom(args), ui, args.model as string, args as Partial<Record<ShowField, boolean>>, args.verify === true),
      ),
    )
    .command(
      "rm <models..>",
      "Remove models",
      (y) => y.positional("models", { type: "string", array: true, demandOption: true }),
      withUi((args, ui) => rmCommand(clientFrom(args), ui, args.models as string[])),
    )
    .command(
      "cp <source> <destination>",
      "Copy a model",
      (y) => y.positional("source", { type: "string", demandOption: true }).positional("destination", { type: "string", demandOption: true }),
      withUi((args, ui) => cpCommand(clientFrom(args), ui, args.source as string, args.destination as string)),
    )
    .command(
      "create <model>",
      "Create a model from a Modelfile",
      (y) =>
        y
          .positional("model", { type: "string", demandOption: true })
          .option("file", { alias: "f", type: "string", default: "Modelfile", describe: "path to the Modelfile" })
          .option("quantize", { alias: "q", type: "string", describe: "quantize to this level (e.g. q8_0)" }),
      withUi((args, ui) =>
        createCommand(clientFrom(args), ui, args.model as string, { file: args.file as string, quantize: args.quantize as string | undefined }),
      ),
    )
    .command(
      "stop <model>",
      "Stop (unload) a running model",
      (y) => y.positional("model", { type: "string", demandOption: true }),
      withUi((args) => stopCommand(clientFrom(args), args.model as string)),
    )
    .command(
      "bench [suite]",
      "Benchmark against llama.cpp and node-llama-cpp (source checkout only): native | engine | prefix | http | all",
      (y) => y.strict(false),
      withUi(async () => {
        // bench/run.ts parses its own options: hand it everything after `bench`.
        const code = await benchCommand(argv.slice(argv.indexOf("bench") + 1));
        if (code !== 0) throw new CliError(`the benchmark failed (exit code ${code})`);
      }),
    )
    .command("version", "Show the client and server versions", (y) => y, withUi((args, ui) => versionCommand(clientFrom(args), ui)))
    .command(
      "config",
      "Show each effective server setting and where it came from",
      (y) => withServerFlags(y),
      withUi((args, ui) => configCommand(ui, configOf(args))),
    )
    .demandCommand(1, "a command is required")
    .strict()
    .help()
    .alias("help", "h")
    .version(false)
    .wrap(Math.min(120, io.stdout.columns || 100))
    .exitProcess(false)
    .fail((message, err) => {
      throw err && message == null ? err : usageError(message ?? err?.message ?? "invalid usage", argv);
    }) as Argv<GlobalArgs>;
}

const COMMANDS = new Set(["serve", "worker", "run", "pull", "push", "list", "ls", "ps", "show", "rm", "cp", "create", "stop", "bench", "version", "config"]);

function commandOf(argv: string[]): string | undefined {
  return argv.find((arg) => !arg.startsWith("-"));
}

/** yargs' messages (bad choice, extra argument), with clearer ones for the common mistakes. */
function usageError(message: string, argv: string[]): UsageError {
  const command = commandOf(argv);
  if (command !== undefined && !COMMANDS.has(command)) return new UsageError(`unknown command '${command}'`);
  if (command !== undefined && message.startsWith("Not enough non-option arguments")) {
    return new UsageError(`missing arguments for '${command}'`);
  }
  return new UsageError(message);
}

/** Runs one command line; returns the exit code. */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const ui = { current: createUi({ verbose: argv.includes("--verbose"), color: !argv.includes("--no-color") }, io) };
  try {
    await buildParser(argv, io, ui).parseAsync();
    return EXIT_OK;
  } catch (err) {
    ui.current.stderr.write(renderError(ui.current, err));
    if (err instanceof UsageError) {
      const command = commandOf(argv);
      const help = command !== undefined && COMMANDS.has(command) ? `vllama ${command} --help` : "vllama --help";
      ui.current.stderr.write(`Run '${help}' for usage.\n`);
    }
    return exitCodeOf(err);
  }
}

/** True when this file is the process's entry point (also through the npm bin symlink). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(hideBin(process.argv)).then((code) => {
    process.exitCode = code;
  });
}
