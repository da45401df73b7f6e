// Image files named inside a prompt, as `ollama run` takes them: `vllama run MODEL "describe
// this ./photo.png"`, or a path dropped into the interactive chat (a terminal may quote it, or
// escape its spaces). Each path that starts with `/`, `./`, `../` or `~/`, ends in an image
// extension and names an existing file is read and cut from the prompt; other text stays.
import { readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { CliError, type Ui } from "./ui.js";

/**
 * A path as `ollama run` finds one (cmd/interactive.go), GIF added as vllama decodes its first
 * frame: quoted (spaces allowed inside), or bare with its spaces escaped (`my\ photo.png`).
 */
const START = String.raw`(?:\.\.?/|~/|/)`;
const EXTENSION = String.raw`\.(?:jpe?g|png|webp|gif)`;
const IMAGE_PATH = new RegExp(String.raw`(['"])(${START}[^'"]*?${EXTENSION})\1|(${START}(?:\\ |[^\s'"])+?${EXTENSION})\b`, "gi");

/** Ollama's limit on one image file. */
const MAX_IMAGE_BYTES = 100 * 1024 * 1024;

export interface PromptWithImages {
  prompt: string;
  /** The files' bytes, base64, in the order the prompt names them. */
  images: string[];
  /** The files read, for the "Added image" note. */
  files: string[];
}

export async function extractImages(prompt: string): Promise<PromptWithImages> {
  const found: PromptWithImages = { prompt, images: [], files: [] };
  for (const [written, , quoted, bare] of prompt.matchAll(IMAGE_PATH)) {
    const file = (quoted ?? bare!.replaceAll("\\ ", " ")).replace(/^~(?=\/)/, homedir());
    const size = await fileSize(file);
    if (size === undefined) continue;
    if (size > MAX_IMAGE_BYTES) throw new CliError(`image ${file} is larger than ${MAX_IMAGE_BYTES / 1024 / 1024} MiB`);
    found.images.push((await readFile(file)).toString("base64"));
    found.files.push(file);
    found.prompt = found.prompt.replace(written, "");
  }
  found.prompt = found.prompt.trim();
  return found;
}

/** A regular file's size; undefined when there is none (the text only looked like a path). */
async function fileSize(file: string): Promise<number | undefined> {
  try {
    const info = await stat(file);
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}

/** The prompt's image files read and cut from it, each noted on stderr as `ollama run` does. */
export async function takeImages(ui: Ui, prompt: string): Promise<PromptWithImages> {
  const found = await extractImages(prompt);
  for (const file of found.files) ui.stderr.write(`Added image '${file}'\n`);
  return found;
}
