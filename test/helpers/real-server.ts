// The real engine behind the real HTTP server on a free port, over an empty store in a temporary
// folder, with a local registry that serves stories260K as `library/stories`.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { Engine } from "../../src/engine/engine.js";
import { ensureBuiltinModel } from "../../src/models/builtin.js";
import { LAYER_MEDIA_TYPES } from "../../src/models/types.js";
import { startServer } from "../../src/server/index.js";
import { storiesPath } from "./models.js";
import { TestRegistry } from "./registry.js";

export interface RealServer {
  engine: Engine;
  registry: TestRegistry;
  url: string;
  close(): Promise<void>;
}

export async function startRealServer(name: string, engineOptions: ConstructorParameters<typeof Engine>[0] = {}): Promise<RealServer> {
  const engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), `vllama-${name}-`)), parallel: 8, ...engineOptions });
  const server = await startServer({ engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "10mb" }, logger: pino({ level: "silent" }) });
  const registry = await TestRegistry.start();
  registry.publish("library/stories", "latest", [{ mediaType: LAYER_MEDIA_TYPES.model, data: readFileSync(storiesPath) }]);
  const close = async () => {
    await server.close();
    await engine.close();
    await registry.close();
  };
  return { engine, registry, url: `http://127.0.0.1:${server.port}`, close };
}

/** A real Engine (4 sequences at once) over an empty temporary store holding the demo model. */
export async function engineWithBuiltinModel(name: string): Promise<Engine> {
  const engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), `vllama-${name}-`)), parallel: 4 });
  await ensureBuiltinModel(engine.store);
  return engine;
}

/**
 * Creates "stories-chat" over HTTP: stories260K has no chat template, and one that renders the
 * user's text alone prompts it as /api/generate does, so the greedy reference comes back unchanged.
 */
export async function createStoriesChat(url: string): Promise<void> {
  const created = await fetch(`${url}/api/create`, { method: "POST", body: JSON.stringify({ model: "stories-chat", from: storiesPath, template: "{{ .Prompt }}", stream: false }) });
  assert.equal(created.status, 200, await created.text());
}
