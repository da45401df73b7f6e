// `vllama run`: one prompt (argument or piped stdin) through /api/generate, or an interactive
// chat through /api/chat that keeps the conversation. Pulls the model first when it is missing.
import type { GenerateResponse } from "../api/ollama.js";
import { createAnswerWriter, formatStats, type RequestBase } from "./answer.js";
import { ApiError, type Client } from "./client.js";
import { takeImages } from "./image-paths.js";
import { startChat } from "./interactive.js";
import { createProgress, showProgress, withSpinner } from "./progress.js";
import type { InStream, Ui } from "./ui.js";

export interface RunOptions {
  model: string;
  prompt: string[];
  format?: "json";
  keepAlive?: string;
  wordWrap: boolean;
  stdin: InStream;
}

export async function runCommand(client: Client, ui: Ui, options: RunOptions): Promise<void> {
  const vision = (await ensureModel(client, ui, options.model)).includes("vision");
  const base: RequestBase = { model: options.model, format: options.format, keep_alive: options.keepAlive };
  await loadModel(client, ui, base);
  const argPrompt = options.prompt.join(" ");
  if (argPrompt === "" && options.stdin.isTTY) {
    await startChat(client, ui, base, { wordWrap: options.wordWrap, input: options.stdin, vision });
    return;
  }
  const piped = options.stdin.isTTY ? "" : await readAll(options.stdin);
  const prompt = [piped.trimEnd(), argPrompt].filter((part) => part !== "").join(" ");
  // As `ollama run`: a vision model's prompt may name image files (`"describe this" ./photo.png`).
  const withImages = vision ? await takeImages(ui, prompt) : { prompt, images: [] };
  await generateOnce(client, ui, { ...base, ...(withImages.images.length ? { images: withImages.images } : {}) }, withImages.prompt, options.wordWrap);
}

/** Like `ollama run`: a model missing from the store is pulled before it runs. Its capabilities. */
async function ensureModel(client: Client, ui: Ui, model: string): Promise<string[]> {
  try {
    return (await client.show(model)).capabilities ?? [];
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
    await showProgress(client.pull(model), createProgress({ ...ui, json: false }));
    return (await client.show(model)).capabilities ?? [];
  }
}

/** Like `ollama run`: the model is loaded first (an empty prompt), with a spinner in a terminal. */
async function loadModel(client: Client, ui: Ui, base: RequestBase): Promise<void> {
  await withSpinner(ui, `loading ${base.model}`, async () => {
    for await (const chunk of client.generate({ ...base, prompt: "" })) void chunk;
  });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = "";
  stream.setEncoding("utf8");
  for await (const chunk of stream) text += chunk as string;
  return text;
}

async function generateOnce(client: Client, ui: Ui, base: RequestBase & { images?: string[] }, prompt: string, wordWrap: boolean): Promise<void> {
  const out = createAnswerWriter(ui, wordWrap);
  let final: GenerateResponse | undefined;
  for await (const chunk of client.generate({ ...base, prompt })) {
    out.write(chunk.response);
    if (chunk.done) final = chunk;
  }
  out.end();
  if (final && ui.verbose) ui.stderr.write(formatStats(final));
}
