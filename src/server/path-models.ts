// Path models over HTTP (issue 13, finding 5): `"model": "/any/path.gguf"` loaded any GGUF the
// server could read, `/api/create` with `from` a path copied one into the store, and the errors
// told a client which paths exist. Over HTTP a path model is served only from the directories the
// operator lists (`--allow-path`), or, with no list, only when the server binds a loopback
// address (whoever reaches it can read the files anyway). Anything else, and any path that is not
// a regular file, is "not found", the same answer whether or not the file exists. An in-process
// `new Engine()` keeps path models as they were.
import { realpathSync } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import path from "node:path";
import { NotFoundError } from "../api/errors.js";
import { looksLikeModelPath, modelPathOf } from "../models/model-ref.js";
import { isLoopbackBind } from "./security.js";

/** The request fields that name a model to load or copy from. */
const MODEL_FIELDS = ["model", "name", "from"] as const;

/** Resolves when every path model a request body names may be served; else rejects with "not found". */
export function pathModelCheck(allowPaths: readonly string[], host: string): (body: unknown) => Promise<void> {
  const roots = allowPaths.map(realDirectory);
  const allowed = (file: string) =>
    roots.length === 0 ? isLoopbackBind(host) : roots.some((root) => file === root || file.startsWith(root + path.sep));
  return async (body) => {
    if (body === null || typeof body !== "object") return;
    for (const field of MODEL_FIELDS) {
      const name = (body as Record<string, unknown>)[field];
      if (typeof name !== "string" || !looksLikeModelPath(name)) continue;
      if (!(await isServable(modelPathOf(name), allowed))) throw new NotFoundError(`model '${name}' not found`);
    }
  };
}

/** A regular file (not a directory, FIFO or device) whose real path is allowed; stat opens nothing, so a FIFO cannot hang it. */
async function isServable(file: string, allowed: (real: string) => boolean): Promise<boolean> {
  try {
    const real = await realpath(file);
    return allowed(real) && (await stat(real)).isFile();
  } catch {
    return false;
  }
}

/** A listed directory by its real path (symlinks resolved, as the files in it are), or as given when it does not exist yet. */
function realDirectory(dir: string): string {
  const absolute = modelPathOf(dir);
  try {
    return realpathSync(absolute);
  } catch {
    return absolute;
  }
}
