// What every command writes through: the output streams and the global output flags, plus the
// CLI's error types (their exit codes) and the one-line error rendering.
import { VllamaError } from "../api/errors.js";
import { ApiError, ConnectionError } from "./client.js";

/** A process's output stream, or a capture of it in tests. */
export type OutStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
export type InStream = NodeJS.ReadableStream & { isTTY?: boolean };

/** The process's streams and environment; tests pass their own. */
export interface Io {
  stdin: InStream;
  stdout: OutStream;
  stderr: OutStream;
  env: NodeJS.ProcessEnv;
}

export function processIo(): Io {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

export interface Ui {
  stdout: OutStream;
  stderr: OutStream;
  /** Machine-readable output (list, ps, show, pull, version, config). */
  json: boolean;
  quiet: boolean;
  /** Stack traces on errors; timings after `run`. */
  verbose: boolean;
  color: boolean;
}

export function createUi(flags: { json?: boolean; quiet?: boolean; verbose?: boolean; color?: boolean }, io: Io): Ui {
  return {
    stdout: io.stdout,
    stderr: io.stderr,
    json: flags.json === true,
    quiet: flags.quiet === true,
    verbose: flags.verbose === true,
    color: flags.color !== false && !io.env.NO_COLOR && io.stderr.isTTY === true,
  };
}

export function printJson(ui: Ui, value: unknown): void {
  ui.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** One compact line per value, for streams of events (NDJSON). */
export function printJsonLine(ui: Ui, value: unknown): void {
  ui.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Bad usage: exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A runtime failure whose message is already complete for the user: exit code 1. */
export class CliError extends Error {
  override name = "CliError";
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function exitCodeOf(err: unknown): number {
  return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
}

/** 404s about a model get Ollama's hint to pull it. */
export function withPullHint(err: unknown, model: string): unknown {
  if (err instanceof ApiError && err.status === 404) {
    return new CliError(`model '${model}' not found, try \`vllama pull ${model}\``, { cause: err });
  }
  return err;
}

/** One line, "Error: ...", unless --verbose asks for the stack. */
export function renderError(ui: Ui, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const prefix = ui.color ? "\x1b[31mError:\x1b[0m" : "Error:";
  const known = [CliError, UsageError, ApiError, ConnectionError, VllamaError].some((type) => err instanceof type);
  if (ui.verbose && err instanceof Error && err.stack) {
    const cause = err.cause instanceof Error && err.cause.stack ? `\nCaused by: ${err.cause.stack}` : "";
    return `${prefix} ${message}\n${err.stack}${cause}\n`;
  }
  // Unexpected errors keep their class name: "TypeError: x is undefined" says more than the text.
  const shown = known || !(err instanceof Error) || err.name === "Error" ? message : `${err.name}: ${message}`;
  return `${prefix} ${shown.trim().replace(/\s*\n\s*/g, " ")}\n`;
}
