// Model-management commands: list, ps, show, rm, cp, pull, push, stop, create.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import type { CreateRequest, ShowResponse } from "../api/ollama.js";
import { formatParameterSize } from "../gguf/reader.js";
import { sha256File } from "../models/digest.js";
import { parseModelfile } from "../models/modelfile.js";
import { ApiError, type Client } from "./client.js";
import { humanBytes, humanTime, processorLabel, shortId, table } from "./format.js";
import { createProgress, showProgress } from "./progress.js";
import { CliError, printJson, UsageError, withPullHint, type Ui } from "./ui.js";

export async function listCommand(client: Client, ui: Ui): Promise<void> {
  const { models } = await client.list();
  if (ui.json) return printJson(ui, models);
  // A damaged model says so in its ID column: it can only be deleted (`vllama rm`).
  const rows = models.map((m) => [m.name, m.damaged ? `damaged: ${m.damaged}` : shortId(m.digest), humanBytes(m.size), humanTime(m.modified_at)]);
  ui.stdout.write(table([["NAME", "ID", "SIZE", "MODIFIED"], ...rows]));
}

export async function psCommand(client: Client, ui: Ui): Promise<void> {
  const { models } = await client.ps();
  if (ui.json) return printJson(ui, models);
  const rows = models.map((m) => [
    m.name,
    shortId(m.digest),
    humanBytes(m.size),
    processorLabel(m.size, m.size_vram),
    String(m.context_length),
    humanTime(m.expires_at, Date.now(), "Stopping..."),
  ]);
  ui.stdout.write(table([["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], ...rows]));
}

export const SHOW_FIELDS = ["modelfile", "parameters", "template", "system", "license"] as const;
export type ShowField = (typeof SHOW_FIELDS)[number];

export async function showCommand(
  client: Client,
  ui: Ui,
  model: string,
  fields: Partial<Record<ShowField, boolean>>,
  verify = false,
): Promise<void> {
  const chosen = SHOW_FIELDS.filter((f) => fields[f]);
  if (chosen.length > 1) {
    throw new UsageError(`only one of ${SHOW_FIELDS.map((f) => `--${f}`).join(", ")} can be specified`);
  }
  let info: ShowResponse;
  try {
    info = await client.show(model, ui.verbose, verify ? { verify } : {});
  } catch (err) {
    throw withPullHint(err, model);
  }
  if (ui.json) return printJson(ui, info);
  const field = chosen[0];
  if (field !== undefined) {
    const text = info[field] ?? "";
    ui.stdout.write(text.endsWith("\n") || text === "" ? text : `${text}\n`);
    return;
  }
  ui.stdout.write(renderShow(info, ui.verbose));
  if (verify) ui.stdout.write(section("Verified", [["every blob matches its sha256 digest"]]));
}

function section(title: string, rows: string[][]): string {
  if (rows.length === 0) return "";
  const body = table(rows)
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => `    ${line}\n`)
    .join("");
  return `  ${title}\n${body}\n`;
}

/** First lines of a long text, as Ollama shows a license or system prompt. */
function excerpt(text: string, lines = 2): string[][] {
  const all = text.trim().split("\n");
  const shown = all.slice(0, lines).map((line) => [line]);
  return all.length > lines ? [...shown, ["..."]] : shown;
}

/** A vision model's projector, as `ollama show` lists it: its architecture, size and widths. */
function projectorRows(meta: ShowResponse["projector_info"]): string[][] {
  if (meta === undefined) return [];
  const count = meta["general.parameter_count"];
  const rows: Array<[string, unknown]> = [
    ["architecture", meta["general.architecture"]],
    ["parameters", typeof count === "number" ? formatParameterSize(count) : undefined],
    ["embedding length", meta["clip.vision.embedding_length"]],
    ["dimensions", meta["clip.vision.projection_dim"]],
  ];
  return rows.filter(([, value]) => value !== undefined).map(([label, value]) => [label, String(value)]);
}

/** `ollama show`'s layout: Model, Capabilities, Projector, Parameters, System, License (+ Metadata with --verbose). */
export function renderShow(info: ShowResponse, verbose: boolean): string {
  const meta = info.model_info;
  const arch = String(meta["general.architecture"] ?? info.details.family ?? "");
  const modelRows: string[][] = [["architecture", arch], ["parameters", info.details.parameter_size]];
  for (const [label, key] of [["context length", "context_length"], ["embedding length", "embedding_length"]]) {
    const value = meta[`${arch}.${key}`];
    if (value !== undefined) modelRows.push([label!, String(value)]);
  }
  modelRows.push(["quantization", info.details.quantization_level]);
  const parameterRows = info.parameters
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "")
    .map((line) => {
      const space = line.search(/\s/);
      return space < 0 ? [line] : [line.slice(0, space), line.slice(space).trim()];
    });
  const metadataRows = verbose ? Object.entries(meta).map(([key, value]) => [key, formatMetadata(value)]) : [];
  return (
    "\n" +
    section("Model", modelRows.filter(([, value]) => value !== "")) +
    section("Capabilities", info.capabilities.map((c) => [c])) +
    section("Projector", projectorRows(info.projector_info)) +
    section("Parameters", parameterRows) +
    section("System", info.system ? excerpt(info.system) : []) +
    section("License", info.license ? excerpt(info.license) : []) +
    section("Metadata", metadataRows)
  );
}

function formatMetadata(value: unknown): string {
  if (Array.isArray(value)) return value.length > 8 ? `[${value.slice(0, 8).join(", ")}, ...]` : `[${value.join(", ")}]`;
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Empty prompt with keep_alive 0: the server unloads the model without loading it. */
async function unload(client: Client, model: string): Promise<void> {
  for await (const _ of client.generate({ model, keep_alive: 0 })) {
    // drain to the final object
  }
}

export async function stopCommand(client: Client, model: string): Promise<void> {
  try {
    await unload(client, model);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      throw new CliError(`couldn't find model '${model}' to stop`, { cause: err });
    }
    throw err;
  }
}

export async function rmCommand(client: Client, ui: Ui, models: string[]): Promise<void> {
  for (const model of models) {
    try {
      await unload(client, model);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) ui.stderr.write(`Warning: unable to stop model '${model}'\n`);
    }
    await client.delete(model);
    if (!ui.quiet) ui.stdout.write(`deleted '${model}'\n`);
  }
}

export async function cpCommand(client: Client, ui: Ui, source: string, destination: string): Promise<void> {
  try {
    await client.copy({ source, destination });
  } catch (err) {
    throw withPullHint(err, source);
  }
  if (!ui.quiet) ui.stdout.write(`copied '${source}' to '${destination}'\n`);
}

export async function pullCommand(client: Client, ui: Ui, model: string, insecure: boolean): Promise<void> {
  await showProgress(client.pull(model, insecure), createProgress(ui));
}

export async function pushCommand(client: Client, ui: Ui, model: string, insecure: boolean): Promise<void> {
  await showProgress(client.push(model, insecure), createProgress(ui));
}

/** Ollama's rule: FROM names a file when it looks like a path, or is an existing .gguf file. */
function localFileOf(from: string, baseDir: string): string | undefined {
  const path = resolve(baseDir, from.replace(/^~(?=$|\/)/, homedir()));
  return /^(\/|\.\.?\/|~)/.test(from) || (/\.gguf$/i.test(from) && existsSync(path)) ? path : undefined;
}

/** The GGUF files a local FROM names: the file, or each `.gguf` of a folder (a model and its projector). */
function ggufFilesAt(path: string): string[] {
  if (!existsSync(path) || !statSync(path).isDirectory()) return [path];
  const files = readdirSync(path).filter((name) => /\.gguf$/i.test(name)).sort().map((name) => join(path, name));
  if (files.length === 0) throw new CliError(`${path} holds no GGUF file (convert safetensors to GGUF first)`);
  return files;
}

/**
 * Parses the Modelfile here and sends the structured request, uploading local FROM files as
 * blobs first (as `ollama create` does), so it works against a server on another machine. Two
 * FROM lines (a model and its projector) or a FROM folder holding both make a vision model: the
 * server tells the projector apart by its GGUF architecture.
 */
export async function createCommand(
  client: Client,
  ui: Ui,
  model: string,
  options: { file: string; quantize?: string },
): Promise<void> {
  const modelfilePath = resolve(options.file);
  let text: string;
  try {
    text = readFileSync(modelfilePath, "utf8");
  } catch (err) {
    throw new CliError(`cannot read Modelfile ${modelfilePath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const modelfile = parseModelfile(text);
  const progress = createProgress(ui);
  const request: Partial<CreateRequest> & { model: string } = {
    model,
    template: modelfile.template,
    system: modelfile.system,
    parameters: Object.keys(modelfile.parameters).length > 0 ? modelfile.parameters : undefined,
    messages: modelfile.messages.length > 0 ? (modelfile.messages as CreateRequest["messages"]) : undefined,
    license: modelfile.license.length > 0 ? modelfile.license : undefined,
    quantize: options.quantize,
  };
  const baseDir = dirname(modelfilePath);
  const localFiles = modelfile.from.map((from) => localFileOf(from, baseDir));
  if (modelfile.from.length === 1 && localFiles[0] === undefined) {
    request.from = modelfile.from[0];
  } else {
    const named = modelfile.from.find((_, i) => localFiles[i] === undefined);
    if (named !== undefined) throw new CliError(`FROM ${named}: with several FROM lines, each names a GGUF file or folder (a model and its projector)`);
    try {
      request.files = {};
      for (const file of (localFiles as string[]).flatMap(ggufFilesAt)) {
        request.files[relative(baseDir, file)] = await uploadFile(client, file, (status) => progress.update({ status }));
      }
    } catch (err) {
      progress.finish();
      throw err;
    }
  }
  await showProgress(client.create(request), progress);
}

async function uploadFile(client: Client, path: string, report: (status: string) => void): Promise<string> {
  if (!existsSync(path)) throw new CliError(`no such file: ${path}`);
  report("gathering model components");
  const digest = await sha256File(path);
  if (!(await client.hasBlob(digest))) {
    report(`copying file ${digest}`);
    await client.uploadBlob(digest, path);
  }
  return digest;
}
