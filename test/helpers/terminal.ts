// The CLI in a real pseudo-terminal (util-linux `script`), for the interactive chat: what the user
// types goes in as keys, and the screen comes back as text.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join, resolve } from "node:path";

const MAIN = join(resolve(import.meta.dirname, "..", ".."), "src/cli/main.ts");
/** By URL: the CLI may run in a temp directory, where a bare "tsx" would not resolve. */
const TSX = import.meta.resolve("tsx");

/** The user's environment minus anything that configures vllama or Ollama, plus `extra`, without colors. */
export function cliEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(OLLAMA_|VLLAMA_|NO_COLOR)/.test(key)) env[key] = value;
  }
  return { ...env, NO_COLOR: "1", ...extra };
}

/** A `vllama` session under `script`, which gives the CLI a terminal on stdin and stdout. */
export class TerminalSession {
  private output = "";
  private readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;

  constructor(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }) {
    const command = [process.execPath, "--import", TSX, MAIN, ...args].map((a) => `'${a}'`).join(" ");
    this.child = spawn("script", ["-q", "-e", "-c", command, "/dev/null"], options);
    this.child.stdout.on("data", (d: Buffer) => (this.output += d.toString()));
    this.child.stderr.on("data", (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((done) => this.child.on("close", (code) => done(code)));
  }

  /** Everything printed so far, without terminal control sequences. */
  get text(): string {
    return this.output.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
  }

  type(keys: string): void {
    this.child.stdin.write(keys);
  }

  async waitFor(expected: RegExp | ((text: string) => boolean), timeoutMs = 20_000): Promise<void> {
    const matches = typeof expected === "function" ? expected : (text: string) => expected.test(text);
    const deadline = Date.now() + timeoutMs;
    while (!matches(this.text)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${String(expected)}; output so far:\n${this.text}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Types a line, waits for the next prompt (">>> " or "... ") with output that matches
   * `expected`, and returns that output: what was printed after the echoed line.
   */
  async enter(line: string, expected: RegExp = /[\s\S]*/): Promise<string> {
    const start = this.text.length;
    this.type(`${line}\r`);
    let output = "";
    const answered = (text: string) => {
      const after = text.slice(start);
      const echoEnd = after.indexOf("\n");
      if (echoEnd < 0 || !/(>>>|\.\.\.) $/.test(after)) return false;
      output = after.slice(echoEnd + 1).replace(/(>>>|\.\.\.) $/, "");
      return expected.test(output);
    };
    try {
      await this.waitFor(answered);
    } catch {
      throw new Error(`timed out waiting for ${expected} after typing '${line}'; output since:\n${this.text.slice(start)}`);
    }
    return output;
  }

  kill(): void {
    this.child.kill("SIGKILL");
  }
}
