// Temporary folders and model stores for a test file, removed after its tests, and the progress
// events a store operation reports.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import type { ProgressResponse } from "../../src/api/ollama.js";
import { ModelStore } from "../../src/models/store.js";

/** Call at a test file's top level: returns a maker of `vllama-<prefix>-*` folders, all removed after the file's tests. */
export function tempDirs(prefix: string): { tempDir: () => Promise<string>; newStore: () => Promise<ModelStore> } {
  const made: string[] = [];
  after(async () => {
    for (const dir of made) await rm(dir, { recursive: true, force: true });
  });
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), `vllama-${prefix}-`));
    made.push(dir);
    return dir;
  };
  return { tempDir, newStore: async () => new ModelStore(join(await tempDir(), "models")) };
}

/** Collects a store operation's progress events. */
export function collectProgress(): { events: ProgressResponse[]; onProgress: (e: ProgressResponse) => void } {
  const events: ProgressResponse[] = [];
  return { events, onProgress: (e) => events.push(e) };
}
