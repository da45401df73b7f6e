// The server's logger: pino's JSON lines when the output is a file or a collector, and short
// readable lines ("12:04:05 INFO  listening url=...") in a terminal (pino-pretty is not a dependency).
import { pino, type DestinationStream, type Logger } from "pino";
import type { LogLevel } from "../config.js";

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const LEVEL_COLORS: Record<number, string> = { 10: "90", 20: "36", 30: "32", 40: "33", 50: "31", 60: "35" };
/** Fields every line has; the readable form shows them in its own way or not at all. */
const OMITTED = new Set(["level", "time", "msg", "pid", "hostname"]);

function formatField(value: unknown): string {
  if (typeof value === "string") return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/** One JSON log record as a terminal line. */
export function formatLogLine(record: Record<string, unknown>, color: boolean): string {
  const level = Number(record.level);
  const time = new Date(Number(record.time)).toTimeString().slice(0, 8);
  const name = (LEVEL_NAMES[level] ?? String(level)).padEnd(5);
  const levelText = color ? `\x1b[${LEVEL_COLORS[level] ?? "0"}m${name}\x1b[0m` : name;
  const fields = Object.entries(record)
    .filter(([key]) => !OMITTED.has(key))
    .map(([key, value]) => {
      // Errors arrive serialized ({type, message, stack}): the message is what a reader needs.
      if (key === "err" && value && typeof value === "object") return `err=${formatField((value as { message?: unknown }).message)}`;
      return `${key}=${formatField(value)}`;
    });
  return `${time} ${levelText} ${[record.msg ?? "", ...fields].join(" ")}\n`;
}

function terminalStream(out: NodeJS.WriteStream, color: boolean): DestinationStream {
  return {
    write(line: string) {
      try {
        out.write(formatLogLine(JSON.parse(line) as Record<string, unknown>, color));
      } catch {
        out.write(line);
      }
    },
  };
}

/** Logs go to stderr, as Ollama's do. */
export function createLogger(level: LogLevel, color: boolean): Logger {
  const destination = process.stderr.isTTY ? terminalStream(process.stderr, color) : pino.destination({ dest: 2, sync: true });
  return pino({ level, base: undefined }, destination);
}
