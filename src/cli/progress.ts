// Progress of pull / push / create streams. In a terminal: one line per status, redrawn in
// place (status, percent, bar, bytes, speed). Otherwise: each new status once, as plain lines.
// Both go to stderr, as Ollama's do: stdout stays for data (--json events).
import type { ProgressResponse } from "../api/ollama.js";
import { humanBytes } from "./format.js";
import { printJsonLine, type OutStream, type Ui } from "./ui.js";

const BAR_WIDTH = 25;
/** Redraws closer together than this are skipped: a fast local pull sends thousands of events. */
const REDRAW_INTERVAL_MS = 100;

export interface ProgressSink {
  update(event: ProgressResponse): void;
  /** Ends the current line (call on success and on failure). */
  finish(): void;
}

interface Line {
  status: string;
  startedAt: number;
  startCompleted: number;
  drawnAt: number;
}

function bar(fraction: number): string {
  const filled = Math.round(fraction * BAR_WIDTH);
  return `▕${"█".repeat(filled)}${" ".repeat(BAR_WIDTH - filled)}▏`;
}

/** "pulling 6a07...:  45% ▕█████     ▏ 900 MB/2.0 GB  12 MB/s" */
export function progressLine(event: ProgressResponse, bytesPerSecond: number | undefined): string {
  const { status, total, completed } = event;
  if (!total) return status;
  const done = Math.min(completed ?? 0, total);
  const fraction = done / total;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const speed = bytesPerSecond && done < total ? `  ${humanBytes(bytesPerSecond)}/s` : "";
  return `${status}: ${percent} ${bar(fraction)} ${humanBytes(done)}/${humanBytes(total)}${speed}`;
}

class TerminalProgress implements ProgressSink {
  private line: Line | undefined;

  constructor(private readonly out: OutStream) {}

  update(event: ProgressResponse): void {
    const now = Date.now();
    if (this.line?.status !== event.status) {
      if (this.line) this.out.write("\n");
      this.line = { status: event.status, startedAt: now, startCompleted: event.completed ?? 0, drawnAt: 0 };
    }
    const line = this.line;
    const finished = event.total !== undefined && (event.completed ?? 0) >= event.total;
    if (!finished && now - line.drawnAt < REDRAW_INTERVAL_MS) return;
    line.drawnAt = now;
    const elapsed = (now - line.startedAt) / 1000;
    const speed = elapsed > 0.5 ? ((event.completed ?? 0) - line.startCompleted) / elapsed : undefined;
    this.out.write(`\r\x1b[2K${progressLine(event, speed)}`);
  }

  finish(): void {
    if (this.line) this.out.write("\n");
    this.line = undefined;
  }
}

class PlainProgress implements ProgressSink {
  private lastStatus: string | undefined;

  constructor(private readonly out: OutStream) {}

  update(event: ProgressResponse): void {
    if (event.status === this.lastStatus) return;
    this.lastStatus = event.status;
    this.out.write(`${event.total ? `${event.status} (${humanBytes(event.total)})` : event.status}\n`);
  }

  finish(): void {}
}

class JsonProgress implements ProgressSink {
  constructor(private readonly ui: Ui) {}

  update(event: ProgressResponse): void {
    printJsonLine(this.ui, event);
  }

  finish(): void {}
}

const silent: ProgressSink = { update() {}, finish() {} };

/** --json: every event as an NDJSON line; --quiet: nothing; else bar or plain lines. */
export function createProgress(ui: Ui): ProgressSink {
  if (ui.json) return new JsonProgress(ui);
  if (ui.quiet) return silent;
  return ui.stderr.isTTY ? new TerminalProgress(ui.stderr) : new PlainProgress(ui.stderr);
}

/** Drives a progress stream to its end through the sink; the line is closed even on failure. */
export async function showProgress(events: AsyncIterable<ProgressResponse>, sink: ProgressSink): Promise<void> {
  try {
    for await (const event of events) sink.update(event);
  } finally {
    sink.finish();
  }
}

const SPINNER_FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** Runs `work` with a spinner and `label` on one redrawn terminal line (nothing when not a TTY). */
export async function withSpinner<T>(ui: Ui, label: string, work: () => Promise<T>): Promise<T> {
  if (!ui.stderr.isTTY || ui.quiet || ui.json) return work();
  let frame = 0;
  const draw = () => ui.stderr.write(`\r${SPINNER_FRAMES[frame++ % SPINNER_FRAMES.length]} ${label}`);
  draw();
  const timer = setInterval(draw, 100);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    ui.stderr.write("\r\x1b[K");
  }
}
