// The `vllama` CLI against a small fake Ollama-compatible server: output formats, --json, exit
// codes (0/1/2), error lines with their hints, and the interactive chat driven through a real
// pseudo-terminal (util-linux `script`). Most commands run in-process through `main(argv, io)`
// (milliseconds each); what depends on the process itself (exit status, real stdin, the
// terminal, serve) is spawned as users run it: `node --import tsx src/cli/main.ts ...`.
import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { createChatAnswerWriter, WordWrapper } from "../../src/cli/answer.js";
import { humanBytes, humanDuration, humanTime, processorLabel, table } from "../../src/cli/format.js";
import { InputCollector } from "../../src/cli/interactive.js";
import { main } from "../../src/cli/main.js";
import { progressLine } from "../../src/cli/progress.js";
import { cliEnv, TerminalSession } from "../helpers/terminal.js";
import { testImage } from "../helpers/images.js";
import { repoRoot as ROOT } from "../helpers/models.js";

/** The fake server's vision model: show lists `vision` and a projector. */
const VISION_MODEL = "llava";

const MAIN = join(ROOT, "src/cli/main.ts");
/** By URL: the CLI runs in a temp directory, where a bare "tsx" would not resolve. */
const TSX = import.meta.resolve("tsx");
const HOUR = 3_600_000;
const DIGEST = `sha256:a80c4f17acd5${"0".repeat(52)}`;
const MODEL_SIZE = 2_019_393_189;
const details = {
  parent_model: "", format: "gguf", family: "llama", families: ["llama"], parameter_size: "3.2B", quantization_level: "Q4_K_M",
};

// ---------------------------------------------------------------------------------------------
// In-process: the formats and the input rules

describe("formats", () => {
  test("sizes in decimal units, as Ollama", () => {
    assert.deepEqual(
      [0, 999, 1000, 1500, 2_019_393_189, 12_300_000_000, 4_000_000_000_000].map(humanBytes),
      ["0 B", "999 B", "1 KB", "1.5 KB", "2.0 GB", "12 GB", "4 TB"],
    );
  });

  test("relative times, as docker/go-units", () => {
    const now = Date.parse("2026-01-10T12:00:00Z");
    const ago = (ms: number) => humanTime(new Date(now - ms).toISOString(), now);
    assert.equal(ago(500), "Less than a second ago");
    assert.equal(ago(30_000), "30 seconds ago");
    assert.equal(ago(90_000), "About a minute ago");
    assert.equal(ago(50 * HOUR), "2 days ago");
    assert.equal(ago(20 * 24 * HOUR), "2 weeks ago");
    assert.equal(ago(-4.5 * 60_000), "4 minutes from now");
    assert.equal(humanTime("2318-01-01T00:00:00Z", now), "Forever");
    assert.equal(humanTime("0001-01-01T00:00:00Z", now, "Stopping..."), "Stopping...");
    assert.equal(humanDuration(3 * 365 * 24 * HOUR), "3 years");
  });

  test("processor split and columns", () => {
    assert.deepEqual([processorLabel(100, 0), processorLabel(100, 100), processorLabel(100, 52)], ["100% CPU", "100% GPU", "48%/52% CPU/GPU"]);
    assert.equal(table([["A", "B", "C"], ["long", "x", "y"]]), "A       B    C\nlong    x    y\n");
  });

  test("progress line: percent, bar, bytes and speed", () => {
    const line = progressLine({ status: "pulling abc", total: 2_000_000_000, completed: 500_000_000 }, 25_000_000);
    assert.equal(line, `pulling abc:  25% ▕${"█".repeat(6)}${" ".repeat(19)}▏ 500 MB/2 GB  25 MB/s`);
    assert.equal(progressLine({ status: "writing manifest" }, undefined), "writing manifest");
  });

  test("word wrap breaks at spaces, never inside a word", () => {
    let out = "";
    const wrapper = new WordWrapper((text) => (out += text), 12);
    for (const piece of ["The quick br", "own fox jumps over", " the lazy dog\nend"]) wrapper.push(piece);
    wrapper.flush();
    assert.equal(out, "The quick \nbrown fox \njumps over \nthe lazy dog\nend");
    assert.ok(out.split("\n").every((line) => line.length <= 12));
  });

  test("a thinking model's reasoning is framed as Ollama frames it", () => {
    let out = "";
    const writer = createChatAnswerWriter({ write: (text) => (out += text), end: () => (out += "<end>") });
    for (const message of [{ content: "", thinking: "Hmm, " }, { content: "", thinking: "two." }, { content: "It is 2." }]) {
      writer.write(message);
    }
    writer.end();
    assert.equal(out, "Thinking...\nHmm, two.\n...done thinking.\n\nIt is 2.<end>");
  });

  test('input: """ blocks, commands, plain lines', () => {
    const input = new InputCollector();
    assert.deepEqual(input.feed("hello"), { kind: "message", text: "hello" });
    assert.deepEqual(input.feed("/bye"), { kind: "command", name: "/bye", args: "" });
    assert.deepEqual(input.feed("  /set  parameter stop a  b "), { kind: "command", name: "/set", args: "parameter stop a  b" });
    assert.deepEqual(input.feed('"""one line"""'), { kind: "message", text: "one line" });
    assert.deepEqual(input.feed('"""first'), { kind: "more" });
    assert.equal(input.inBlock, true);
    assert.deepEqual(input.feed("/not a command inside"), { kind: "more" });
    assert.deepEqual(input.feed('last"""'), { kind: "message", text: "first\n/not a command inside\nlast" });
    assert.equal(input.inBlock, false);
    assert.deepEqual(input.feed('"""'), { kind: "more" });
    assert.deepEqual(input.feed('only"""'), { kind: "message", text: "only" });
  });

  test('input: /set system takes a """ block too', () => {
    const input = new InputCollector();
    assert.deepEqual(input.feed("/set system Be brief."), { kind: "command", name: "/set", args: "system Be brief." });
    assert.deepEqual(input.feed('/set system """Be brief."""'), { kind: "system", text: "Be brief." });
    assert.deepEqual(input.feed('/set system """You are'), { kind: "more" });
    assert.deepEqual(input.feed("  a pirate."), { kind: "more" });
    assert.deepEqual(input.feed('Arr."""'), { kind: "system", text: "You are\n  a pirate.\nArr." });
    assert.equal(input.inBlock, false);
  });
});

// ---------------------------------------------------------------------------------------------
// Fake server

interface Recorded {
  method: string;
  path: string;
  body: unknown;
}

class FakeOllama {
  readonly requests: Recorded[] = [];
  readonly blobs = new Map<string, Buffer>();
  models = new Set(["llama3.2:latest"]);
  private server: Server | undefined;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((done) => this.server!.listen(0, "127.0.0.1", done));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    return new Promise((done) => this.server!.close(() => done()));
  }

  last(path: string): Recorded | undefined {
    return this.requests.filter((r) => r.path === path).at(-1);
  }

  /** Stored models, and the vision model, which show answers but no listing names. */
  private has(name: unknown): boolean {
    const full = String(name).includes(":") ? String(name) : `${String(name)}:latest`;
    return this.models.has(full) || full === `${VISION_MODEL}:latest`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const path = req.url ?? "/";
    let body: any = {};
    if (req.headers["content-type"] === "application/json") body = JSON.parse(raw.toString("utf8"));
    this.requests.push({ method: req.method ?? "", path, body });

    const json = (status: number, value?: unknown) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(value === undefined ? "" : JSON.stringify(value));
    };
    const notFound = (name: unknown) => json(404, { error: `model '${String(name)}' not found` });
    const stream = async (lines: unknown[]) => {
      res.writeHead(200, { "Content-Type": "application/x-ndjson" });
      for (const line of lines) {
        res.write(`${JSON.stringify(line)}\n`);
        await new Promise((r) => setTimeout(r, 5));
      }
      res.end();
    };
    const model = body.model ?? body.name;

    if (path.startsWith("/api/blobs/")) {
      const digest = path.slice("/api/blobs/".length);
      if (req.method === "HEAD") return json(this.blobs.has(digest) ? 200 : 404);
      const actual = `sha256:${createHash("sha256").update(raw).digest("hex")}`;
      if (actual !== digest) return json(400, { error: "digest mismatch" });
      this.blobs.set(digest, raw);
      return json(201);
    }
    switch (`${req.method} ${path}`) {
      case "GET /api/version":
        return json(200, { version: "9.9.9" });
      case "GET /api/tags":
        return json(200, {
          models: [...this.models].map((name) => ({
            name, model: name, modified_at: new Date(Date.now() - 50 * HOUR).toISOString(), size: MODEL_SIZE, digest: DIGEST.slice(7), details,
          })),
        });
      case "GET /api/ps":
        return json(200, {
          models: [{
            name: "llama3.2:latest", model: "llama3.2:latest", size: MODEL_SIZE, digest: DIGEST.slice(7), details,
            expires_at: new Date(Date.now() + 4.5 * 60_000).toISOString(), size_vram: MODEL_SIZE, context_length: 4096,
          }],
        });
      case "POST /api/show":
        if (!this.has(model)) return notFound(model);
        return json(200, {
          modelfile: "FROM llama3.2\nPARAMETER stop \"<|eot_id|>\"\n",
          parameters: 'stop                           "<|eot_id|>"',
          template: "{{ .Prompt }}",
          system: "You are helpful.",
          license: "LLAMA 3.2 COMMUNITY LICENSE\nline two\nline three",
          details,
          model_info: { "general.architecture": "llama", "llama.context_length": 131072, "llama.embedding_length": 3072 },
          capabilities: model === VISION_MODEL ? ["completion", "vision"] : ["completion", "tools"],
          ...(model === VISION_MODEL ? { projector_info: { "general.architecture": "clip", "general.parameter_count": 595_500_000, "clip.vision.embedding_length": 1024, "clip.vision.projection_dim": 3584 } } : {}),
          modified_at: new Date().toISOString(),
        });
      case "POST /api/pull":
        if (model === "broken") return stream([{ status: "pulling manifest" }, { error: "pull model manifest: file does not exist" }]);
        this.models.add(String(model).includes(":") ? model : `${model}:latest`);
        return stream([
          { status: "pulling manifest" },
          { status: "pulling 6a0746a1ec1a", digest: DIGEST, total: MODEL_SIZE, completed: 0 },
          { status: "pulling 6a0746a1ec1a", digest: DIGEST, total: MODEL_SIZE, completed: MODEL_SIZE / 2 },
          { status: "pulling 6a0746a1ec1a", digest: DIGEST, total: MODEL_SIZE, completed: MODEL_SIZE },
          { status: "verifying sha256 digest" },
          { status: "writing manifest" },
          { status: "success" },
        ]);
      case "POST /api/push":
        return stream([{ status: "retrieving manifest" }, { status: "success" }]);
      case "POST /api/create":
        this.models.add(`${model}:latest`);
        return stream([{ status: "parsing GGUF" }, { status: "writing manifest" }, { status: "success" }]);
      case "POST /api/generate": {
        if (!this.has(model)) return notFound(model);
        const final = { model, created_at: new Date().toISOString(), response: "", done: true, eval_count: 3, eval_duration: 3e8, total_duration: 5e8 };
        if (!body.prompt) return stream([{ ...final, done_reason: body.keep_alive === 0 ? "unload" : "load" }]);
        const words = `echo: ${body.prompt}`.split(/(?<= )/);
        return stream([...words.map((w) => ({ model, created_at: "", response: w, done: false })), { ...final, done_reason: "stop" }]);
      }
      case "POST /api/chat": {
        if (!this.has(model)) return notFound(model);
        const final = { model, created_at: "", message: { role: "assistant", content: "" }, done: true };
        const users = (body.messages as Array<{ role: string; content: string }>).filter((m) => m.role === "user");
        if (users.length === 0) return stream([{ ...final, done_reason: "load" }]);
        // The reply counts the user turns it was sent, which shows the conversation is kept.
        const words = `reply ${users.length}: ${users.at(-1)!.content}`.split(/(?<= )/);
        return stream([
          ...words.map((w) => ({ ...final, message: { role: "assistant", content: w }, done: false })),
          { ...final, done_reason: "stop" },
        ]);
      }
      case "DELETE /api/delete":
        if (!this.has(model)) return notFound(model);
        this.models.delete(String(model).includes(":") ? model : `${model}:latest`);
        return json(200);
      case "POST /api/copy":
        if (!this.has(body.source)) return notFound(body.source);
        this.models.add(`${body.destination}:latest`);
        return json(200);
      default:
        return json(404, { error: "404 page not found" });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Running the CLI

const fake = new FakeOllama();
const home = mkdtempSync(join(tmpdir(), "vllama-cli-"));
let closedPort = 0;

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return cliEnv({ HOME: home, OLLAMA_HOST: fake.url, ...extra });
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface CliOptions {
  input?: string;
  env?: Record<string, string>;
}

/** Output captured as text; not a terminal, as when piped. */
class Capture extends Writable {
  text = "";
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

/** In-process: main() with its own streams and environment. */
async function cli(args: string[], options: CliOptions = {}): Promise<Result> {
  const stdout = new Capture();
  const stderr = new Capture();
  const stdin = Readable.from(options.input === undefined ? [] : [options.input]);
  const code = await main(args, { stdin, stdout, stderr, env: cleanEnv(options.env ?? {}) });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** As a user runs it: a new node process. */
function spawnCli(args: string[], options: CliOptions = {}): Promise<Result> {
  const child = spawn(process.execPath, ["--import", TSX, MAIN, ...args], { cwd: home, env: cleanEnv(options.env ?? {}) });
  return collect(child, options.input ?? "");
}

function collect(child: ChildProcessWithoutNullStreams, input: string): Promise<Result> {
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(input);
  return new Promise((done) => child.on("close", (code) => done({ code, stdout, stderr })));
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  await new Promise((done) => server.close(done));
  return port;
}

before(async () => {
  await fake.start();
  closedPort = await freePort();
});
after(async () => {
  await fake.close();
  rmSync(home, { recursive: true, force: true });
});

// Spawning node + tsx costs a second or more: independent tests run side by side.
const parallel = { concurrency: 4 };

describe("model commands", parallel, () => {
  test("list prints Ollama's columns with human sizes and times", async () => {
    const { code, stdout } = await cli(["list"]);
    assert.equal(code, 0);
    const [header, row] = stdout.trimEnd().split("\n");
    assert.match(header!, /^NAME\s{4,}ID\s{4,}SIZE\s{4,}MODIFIED$/);
    assert.match(row!, /^llama3\.2:latest\s{4,}a80c4f17acd5\s{4,}2\.0 GB\s{4,}2 days ago$/);
    assert.equal(header!.indexOf("ID"), row!.indexOf("a80c4f17acd5"));
  });

  test("ls --json prints the models as JSON", async () => {
    const { code, stdout } = await cli(["ls", "--json"]);
    assert.equal(code, 0);
    const models = JSON.parse(stdout) as Array<{ name: string; size: number }>;
    assert.ok(models.some((m) => m.name === "llama3.2:latest" && m.size === MODEL_SIZE));
  });

  test("ps prints NAME ID SIZE PROCESSOR CONTEXT UNTIL", async () => {
    const { code, stdout } = await cli(["ps"]);
    assert.equal(code, 0);
    const [header, row] = stdout.trimEnd().split("\n");
    assert.match(header!, /^NAME\s+ID\s+SIZE\s+PROCESSOR\s+CONTEXT\s+UNTIL$/);
    assert.match(row!, /^llama3\.2:latest\s+a80c4f17acd5\s+2\.0 GB\s+100% GPU\s+4096\s+4 minutes from now$/);
  });

  test("show prints sections; --license prints the raw field; --json the response", async () => {
    const [plain, license, asJson] = await Promise.all([
      cli(["show", "llama3.2"]),
      cli(["show", "llama3.2", "--license"]),
      cli(["show", "llama3.2", "--json"]),
    ]);
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /  Model\n {4}architecture\s+llama\n {4}parameters\s+3\.2B\n {4}context length\s+131072\n/);
    assert.match(plain.stdout, /  Capabilities\n {4}completion\n {4}tools\n/);
    assert.match(plain.stdout, /  Parameters\n {4}stop\s+"<\|eot_id\|>"\n/);
    assert.match(plain.stdout, /  License\n {4}LLAMA 3\.2 COMMUNITY LICENSE\n {4}line two\n {4}\.\.\.\n/);
    assert.equal(license.stdout, "LLAMA 3.2 COMMUNITY LICENSE\nline two\nline three\n");
    assert.deepEqual(JSON.parse(asJson.stdout).capabilities, ["completion", "tools"]);
  });

  test("show of an unknown model: exit 1 and the pull hint", async () => {
    const { code, stdout, stderr } = await cli(["show", "nope"]);
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.equal(stderr, "Error: model 'nope' not found, try `vllama pull nope`\n");
  });

  test("pull prints each status once when not a terminal; --quiet prints nothing", async () => {
    const [plain, quiet] = await Promise.all([cli(["pull", "qwen3"]), cli(["pull", "qwen3", "--quiet"])]);
    assert.equal(plain.code, 0);
    assert.equal(
      plain.stderr,
      "pulling manifest\npulling 6a0746a1ec1a (2.0 GB)\nverifying sha256 digest\nwriting manifest\nsuccess\n",
    );
    assert.equal(quiet.code, 0);
    assert.equal(quiet.stdout + quiet.stderr, "");
  });

  test("pull --json prints the events as NDJSON", async () => {
    const { code, stdout } = await cli(["pull", "qwen3", "--json"]);
    assert.equal(code, 0);
    const events = stdout.trimEnd().split("\n").map((line) => JSON.parse(line) as { status: string; completed?: number });
    assert.equal(events.length, 7);
    assert.equal(events[2]!.completed, MODEL_SIZE / 2);
    assert.equal(events.at(-1)!.status, "success");
  });

  test("an error line in a stream fails the command with that message", async () => {
    const { code, stderr } = await cli(["pull", "broken"]);
    assert.equal(code, 1);
    assert.match(stderr, /^pulling manifest\nError: pull model manifest: file does not exist\n$/);
  });

  test("cp, rm, stop", async () => {
    const copied = await cli(["cp", "llama3.2", "mine"]);
    assert.deepEqual([copied.code, copied.stdout], [0, "copied 'llama3.2' to 'mine'\n"]);
    assert.deepEqual(fake.last("/api/copy")!.body, { source: "llama3.2", destination: "mine" });

    const removed = await cli(["rm", "mine"]);
    assert.deepEqual([removed.code, removed.stdout], [0, "deleted 'mine'\n"]);
    assert.deepEqual(fake.last("/api/delete")!.body, { model: "mine" });

    const missing = await cli(["rm", "ghost"]);
    assert.deepEqual([missing.code, missing.stderr], [1, "Error: model 'ghost' not found\n"]);

    const stopped = await cli(["stop", "llama3.2"]);
    assert.equal(stopped.code, 0);
    assert.deepEqual(fake.last("/api/generate")!.body, { model: "llama3.2", keep_alive: 0, stream: true });

    const notRunning = await cli(["stop", "ghost"]);
    assert.deepEqual([notRunning.code, notRunning.stderr], [1, "Error: couldn't find model 'ghost' to stop\n"]);
  });

  test("push shows progress", async () => {
    const { code, stderr } = await cli(["push", "me/model"]);
    assert.deepEqual([code, stderr], [0, "retrieving manifest\nsuccess\n"]);
  });
});

describe("create", () => {
  test("uploads a local FROM file as a blob and sends the parsed Modelfile", async () => {
    const dir = mkdtempSync(join(home, "create-"));
    const weights = Buffer.from("GGUF fake weights");
    writeFileSync(join(dir, "model.gguf"), weights);
    writeFileSync(
      join(dir, "Modelfile"),
      'FROM ./model.gguf\nSYSTEM """Be brief."""\nPARAMETER temperature 0.2\nPARAMETER stop "<end>"\nPARAMETER stop "<eot>"\n',
    );
    const { code, stderr } = await cli(["create", "tiny", "-f", join(dir, "Modelfile")]);
    assert.equal(code, 0, stderr);
    const digest = `sha256:${createHash("sha256").update(weights).digest("hex")}`;
    assert.deepEqual(fake.blobs.get(digest), weights);
    assert.deepEqual(fake.last("/api/create")!.body, {
      model: "tiny",
      system: "Be brief.",
      parameters: { temperature: 0.2, stop: ["<end>", "<eot>"] },
      files: { "model.gguf": digest },
      stream: true,
    });
    assert.match(stderr, /copying file sha256:[0-9a-f]{64}\n.*writing manifest\nsuccess\n$/s);
  });

  test("FROM a model name is sent as `from`; a bad Modelfile is one error line", async () => {
    const dir = mkdtempSync(join(home, "create-"));
    writeFileSync(join(dir, "Modelfile"), "FROM llama3.2\nTEMPLATE {{ .Prompt }}\n");
    const ok = await cli(["create", "derived", "--file", join(dir, "Modelfile"), "--quiet"]);
    assert.deepEqual([ok.code, ok.stdout + ok.stderr], [0, ""]);
    assert.deepEqual(fake.last("/api/create")!.body, { model: "derived", from: "llama3.2", template: "{{ .Prompt }}", stream: true });

    writeFileSync(join(dir, "Bad"), "FROM llama3.2\nPARAMETER temperature hot\n");
    const bad = await cli(["create", "x", "-f", join(dir, "Bad")]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^Error: Modelfile line 2: invalid value for parameter 'temperature'.*\n$/);

    const missing = await cli(["create", "x", "-f", join(dir, "Nope")]);
    assert.deepEqual([missing.code, missing.stderr], [1, `Error: cannot read Modelfile ${join(dir, "Nope")}: ENOENT\n`]);
  });
});

describe("run (not a terminal)", parallel, () => {
  test("a vision model's prompt may name image files: read, cut from the prompt, sent as its images", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vllama-run-image-"));
    const photo = join(dir, "my photo.png");
    writeFileSync(photo, testImage(0));
    const { code, stderr } = await cli(["run", VISION_MODEL, "describe this", photo.replace(" ", "\\ "), "and", `'${photo}'`, `${dir}/missing.png`]);
    assert.equal(code, 0, stderr);
    assert.equal(stderr.match(/Added image '.*'\n/g)?.length, 2, stderr);
    const body = fake.requests.filter((r) => r.path === "/api/generate").map((r) => r.body as Record<string, unknown>).find((b) => b.model === VISION_MODEL && b.prompt);
    assert.equal(body?.prompt, `describe this  and  ${dir}/missing.png`);
    assert.deepEqual(body?.images, [testImage(0).toString("base64"), testImage(0).toString("base64")]);
    const text = await cli(["run", "llama3.2", "look at", photo]);
    assert.equal(text.stdout, `echo: look at ${photo}\n`, "a model without vision gets the path as text");
    rmSync(dir, { recursive: true });
  });

  test("show lists a vision model's projector", async () => {
    const { code, stdout } = await cli(["show", VISION_MODEL]);
    assert.equal(code, 0);
    assert.match(stdout, /  Projector\n    architecture\s+clip\s*\n    parameters\s+595\.50M\s*\n    embedding length\s+1024\s*\n    dimensions\s+3584\s*\n/);
  });

  test("answers a prompt given as arguments, streamed, and exits", async () => {
    const { code, stdout } = await cli(["run", "llama3.2", "why", "is", "the", "sky", "blue?", "--keepalive", "10m", "--format", "json"]);
    assert.equal(code, 0);
    assert.equal(stdout, "echo: why is the sky blue?\n");
    const body = fake.requests.filter((r) => r.path === "/api/generate").map((r) => r.body as Record<string, unknown>)
      .find((b) => b.prompt === "why is the sky blue?");
    assert.deepEqual(body, { model: "llama3.2", format: "json", keep_alive: "10m", prompt: "why is the sky blue?", stream: true });
  });

  test("reads the prompt from piped stdin, before the argument", async () => {
    const { code, stdout } = await spawnCli(["run", "llama3.2", "summarize"], { input: "some text\n" });
    assert.deepEqual([code, stdout], [0, "echo: some text summarize\n"]);
  });

  test("--verbose prints timings on stderr", async () => {
    const { code, stderr } = await cli(["run", "llama3.2", "hi", "--verbose"]);
    assert.equal(code, 0);
    assert.match(stderr, /total duration:\s+500\.000ms\n/);
    assert.match(stderr, /eval rate:\s+10\.00 tokens\/s\n/);
  });

  test("pulls a model that is not in the store first", async () => {
    const { code, stdout, stderr } = await cli(["run", "phi4", "hello"]);
    assert.equal(code, 0);
    assert.match(stderr, /^pulling manifest\n/);
    assert.equal(stdout, "echo: hello\n");
  });
});

describe("errors and exit codes", parallel, () => {
  test("server not running: exit 1, one line with the address and the hint", async () => {
    const { code, stderr } = await spawnCli(["list", "--host", `127.0.0.1:${closedPort}`]);
    assert.equal(code, 1);
    assert.equal(stderr, `Error: could not connect to vllama at http://127.0.0.1:${closedPort}, is \`vllama serve\` running?\n`);
  });

  test("--verbose adds the stack trace", async () => {
    const { code, stderr } = await cli(["list", "--verbose"], { env: { OLLAMA_HOST: `127.0.0.1:${closedPort}` } });
    assert.equal(code, 1);
    assert.match(stderr, /^Error: could not connect/);
    assert.match(stderr, /\n\s+at /);
  });

  test("bad usage exits 2", async () => {
    const results = await Promise.all([
      spawnCli(["frobnicate"]),
      cli([]),
      cli(["run"]),
      cli(["run", "m", "--format", "xml"]),
      cli(["list", "extra"]),
      cli(["show", "m", "--license", "--template"]),
      cli(["list", "--host", "h:99999"]),
    ]);
    assert.deepEqual(results.map((r) => r.code), [2, 2, 2, 2, 2, 2, 2]);
    assert.equal(results[0]!.stderr, "Error: unknown command 'frobnicate'\nRun 'vllama --help' for usage.\n");
    assert.equal(results[2]!.stderr, "Error: missing arguments for 'run'\nRun 'vllama run --help' for usage.\n");
    assert.match(results[3]!.stderr, /^Error: Invalid values: Argument: format, Given: "xml", Choices: "json"\n/);
    assert.match(results[6]!.stderr, /^Error: invalid --host="h:99999": expected host\[:port\]/);
  });

  test("bench runs bench/run.ts and passes its failure on", async () => {
    const { code, stderr } = await spawnCli(["bench", "no-such-suite"]);
    assert.equal(code, 1);
    assert.match(stderr, /Invalid values[\s\S]*no-such-suite/);
    assert.match(stderr, /Error: the benchmark failed \(exit code 1\)\n$/);
  });

  test("bench refuses a bad --parallel or --prompt-tokens list or --gpu before it loads anything", async () => {
    const [parallel, gpu, ...promptTokens] = await Promise.all([
      spawnCli(["bench", "engine", "--parallel", "8,x"]),
      spawnCli(["bench", "engine", "--gpu", "tpu"]),
      ...["1024,x", "0", "1.5k", "128,", "-128"].map((list) => spawnCli(["bench", "http", `--prompt-tokens=${list}`])),
    ]);
    assert.equal(parallel.code, 1);
    assert.match(parallel.stderr, /bench: parallel must be a list of positive integers, e\.g\. 1,8,32/);
    for (const result of promptTokens) {
      assert.equal(result.code, 1);
      assert.match(result.stderr, /bench: prompt-tokens must be a list of positive integers, e\.g\. 128,1024,4096/);
    }
    assert.equal(gpu.code, 1);
    assert.match(gpu.stderr, /Invalid values[\s\S]*gpu, Given: "tpu", Choices: "auto", "cuda", "cpu"/);
  });

  test("a bad environment value exits 1 naming the variable", async () => {
    const { code, stderr } = await cli(["list"], { env: { OLLAMA_NUM_PARALLEL: "lots" } });
    assert.deepEqual([code, stderr], [1, 'Error: invalid OLLAMA_NUM_PARALLEL="lots": expected an integer >= 1\n']);
  });

  test("serve on a taken port says which address and how to change it", async () => {
    const taken = createNetServer();
    await new Promise<void>((done) => taken.listen(0, "127.0.0.1", done));
    const { port } = taken.address() as AddressInfo;
    try {
      const { code, stderr } = await spawnCli(["serve", "--host", `127.0.0.1:${port}`], { env: { VLLAMA_LOG_LEVEL: "silent" } });
      assert.equal(code, 1);
      assert.match(stderr, new RegExp(`^Error: address 127\\.0\\.0\\.1:${port} is already in use .*--port ${port + 1} or OLLAMA_HOST=127\\.0\\.0\\.1:${port + 1}\\n$`));
    } finally {
      await new Promise((done) => taken.close(done));
    }
  });
});

describe("version and config", parallel, () => {
  test("version prints the server's and warns about a different client", async () => {
    const { code, stdout } = await cli(["version"]);
    assert.deepEqual([code, stdout], [0, "vllama version is 9.9.9\nWarning: client version is 0.1.0\n"]);
  });

  test("version --json; without a server it still answers", async () => {
    const [withServer, without] = await Promise.all([
      cli(["version", "--json"]),
      cli(["version", "--json"], { env: { OLLAMA_HOST: `127.0.0.1:${closedPort}` } }),
    ]);
    assert.deepEqual(JSON.parse(withServer.stdout), { client: "0.1.0", server: "9.9.9" });
    assert.deepEqual([without.code, JSON.parse(without.stdout)], [0, { client: "0.1.0", server: null }]);
  });

  test("config shows each value and its source; --json is machine-readable", async () => {
    const env = { OLLAMA_HOST: "0.0.0.0:12000", OLLAMA_KEEP_ALIVE: "-1" };
    const [plain, asJson] = await Promise.all([
      cli(["config", "--parallel", "8"], { env }),
      cli(["config", "--json", "--no-prefix-cache", "--no-remote-images"], { env }),
    ]);
    assert.equal(plain.code, 0);
    assert.match(plain.stdout, /^KEY\s+VALUE\s+SOURCE\n/);
    assert.match(plain.stdout, /\nhost\s+0\.0\.0\.0\s+env:OLLAMA_HOST\n/);
    assert.match(plain.stdout, /\nparallel\s+8\s+flag\n/);
    assert.match(plain.stdout, /\nkeepAliveMs\s+forever\s+env:OLLAMA_KEEP_ALIVE\n/);
    assert.match(plain.stdout, /\nkvCells\s+\(computed\)\s+default\n/);
    const { config, sources } = JSON.parse(asJson.stdout);
    assert.deepEqual([config.port, config.keepAliveMs, config.prefixCache, config.remoteImages], [12000, -1, false, false]);
    assert.deepEqual([sources.port, sources.prefixCache, sources.maxQueue], ["env:OLLAMA_HOST", "flag", "default"]);
  });

  test("the flag's earlier name --num-parallel still sets parallel", async () => {
    const { code, stdout } = await cli(["config", "--json", "--num-parallel", "5"], { env: {} });
    assert.equal(code, 0);
    const { config, sources } = JSON.parse(stdout);
    assert.deepEqual([config.parallel, sources.parallel], [5, "flag"]);
  });
});

// ---------------------------------------------------------------------------------------------
// Interactive chat in a real pseudo-terminal

describe("run (interactive terminal)", () => {
  test("chats with streamed answers, keeps the conversation, handles \"\"\", /clear, /? and /bye", async () => {
    const term = new TerminalSession(["run", "llama3.2"], { cwd: home, env: cleanEnv({}) });
    try {
      await term.waitFor(/>>> $/);
      term.type("hello there\r");
      await term.waitFor(/reply 1: hello there\n\n>>> $/);
      term.type("and again\r");
      await term.waitFor(/reply 2: and again\n\n>>> $/); // the first turn was sent along
      term.type('"""first line\r');
      await term.waitFor(/\.\.\. $/);
      term.type('second line"""\r');
      await term.waitFor(/reply 3: first line\nsecond line\n\n>>> $/);
      term.type("/clear\r");
      await term.waitFor(/Cleared session context\n>>> $/);
      term.type("fresh\r");
      await term.waitFor(/reply 1: fresh\n\n>>> $/); // the conversation was forgotten
      term.type("/?\r");
      await term.waitFor(/Available Commands:[\s\S]*\/bye\s+Exit[\s\S]*>>> $/);
      term.type("/nope\r");
      await term.waitFor(/Unknown command '\/nope'\. Type \/\? for help\n>>> $/);
      term.type("/bye\r");
      assert.equal(await term.exited, 0);
    } finally {
      term.kill();
    }
    const chats = fake.requests.filter((r) => r.path === "/api/chat").map((r) => r.body as { messages: Array<{ role: string; content: string }> });
    const second = chats.find((c) => c.messages.at(-1)?.content === "and again")!;
    assert.deepEqual(second.messages, [
      { role: "user", content: "hello there" },
      { role: "assistant", content: "reply 1: hello there" },
      { role: "user", content: "and again" },
    ]);
  });

  test("an image file the chat cannot send fails that turn with a clear message, and the chat goes on", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vllama-chat-image-"));
    const huge = join(dir, "huge.png");
    writeFileSync(huge, "");
    truncateSync(huge, 100 * 1024 * 1024 + 1); // sparse: one byte over Ollama's limit, no disk used
    const photo = join(dir, "photo.png");
    writeFileSync(photo, testImage(0));
    const term = new TerminalSession(["run", VISION_MODEL], { cwd: home, env: cleanEnv({}) });
    try {
      await term.waitFor(/>>> $/);
      assert.equal(await term.enter(`look at ${huge}`), `Error: image ${huge} is larger than 100 MiB\n\n`);
      assert.equal(await term.enter(`and ${photo}`), `Added image '${photo}'\nreply 1: and\n\n`, "the failed turn was not kept");
      term.type("/bye\r");
      assert.equal(await term.exited, 0);
    } finally {
      term.kill();
      rmSync(dir, { recursive: true });
    }
    const sent = fake.requests.filter((r) => r.path === "/api/chat").map((r) => r.body as { model: string; messages: Array<{ images?: string[] }> });
    assert.deepEqual(sent.filter((c) => c.model === VISION_MODEL).at(-1)?.messages.at(-1)?.images, [testImage(0).toString("base64")]);
  });

  test("an unknown model is pulled first, then the chat starts", async () => {
    const term = new TerminalSession(["run", "gemma3"], { cwd: home, env: cleanEnv({}) });
    try {
      await term.waitFor(/success\n(⠋ loading \S+)?>>> $/);
      term.type("/bye\r");
      assert.equal(await term.exited, 0);
    } finally {
      term.kill();
    }
  });
});
