// Browser tests: Debian's chromium driven by playwright-core, against a real server with the real
// engine and stories260K in its model store.
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { pino } from "pino";
import { Engine } from "../../src/engine/engine.js";
import { startServer, type RunningServer } from "../../src/server/index.js";
import { repoRoot, storiesPath } from "./models.js";

/** The system browser (`apt-get install chromium`); CHROMIUM_PATH overrides. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const STORIES_MODEL = "stories260k:latest";
export const SCREENSHOTS = path.join(repoRoot, "docs/screenshots");

export function launchBrowser(): Promise<Browser> {
  // CI runs as root, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
}

export interface ModelServer {
  engine: Engine;
  server: RunningServer;
  url: string;
  close(): Promise<void>;
}

/** A server whose store holds stories260K as "stories260k" (no chat template: the page continues its text). */
export async function startModelServer(): Promise<ModelServer> {
  // One thread: the model is tiny, and on a shared machine a second compute thread only waits.
  const engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-browser-")), parallel: 8, threads: 1 });
  await engine.store.create({ model: "stories260k", from: storiesPath });
  const server = await startServer({ engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "10mb" }, logger: pino({ level: "silent" }) });
  return {
    engine,
    server,
    url: `http://127.0.0.1:${server.port}`,
    close: async () => {
      await server.close();
      await engine.close();
    },
  };
}

/** Waits until no sequence runs or waits, and only the prefix cache's blocks hold cells. */
export async function sequencesFreed(engine: Engine, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [s] = engine.stats();
    if (s && s.running === 0 && s.waiting === 0 && s.kv.usedCells === s.kv.idleCells) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Chromium and a model server for the enclosing suite: started before its tests, closed after them. */
export function useBrowserAndModelServer(): { browser: Browser; model: ModelServer } {
  const env = {} as { browser: Browser; model: ModelServer };
  before(async () => {
    [env.browser, env.model] = await Promise.all([launchBrowser(), startModelServer()]);
  });
  after(async () => {
    await env.browser?.close();
    await env.model?.close();
  });
  return env;
}
