// One HTTP server over one engine for the tests of a describe block: started in the block's
// `before`, closed in its `after` (with the engine when it is a real one), so a suite states only
// what differs between suites: the engine and the server settings. The official clients are made
// on first use, each pointed at the server the way its users point it.
import { request, type ClientRequest } from "node:http";
import { after, before } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { pino } from "pino";
import type { EngineService } from "../../src/api/engine-contract.js";
import { Engine } from "../../src/engine/engine.js";
import { startServer, type RunningServer, type ServerSettings } from "../../src/server/index.js";
import type { FakeEngine } from "./fake-engine.js";

export class Served<E extends EngineService> {
  engine!: E;
  server!: RunningServer;
  url!: string;
  #openai?: OpenAI;
  #ollama?: Ollama;
  #anthropic?: Anthropic;

  get openai(): OpenAI {
    return (this.#openai ??= new OpenAI({ baseURL: `${this.url}/v1`, apiKey: "unused", maxRetries: 0 }));
  }

  get ollama(): Ollama {
    return (this.#ollama ??= new Ollama({ host: this.url }));
  }

  get anthropic(): Anthropic {
    return (this.#anthropic ??= new Anthropic({ baseURL: this.url, apiKey: "any-key", maxRetries: 0 }));
  }
}

export function serveDuringSuite<E extends EngineService>(
  makeEngine: () => E | Promise<E>,
  settings: Partial<ServerSettings> = {},
): Served<E> {
  const served = new Served<E>();
  before(async () => {
    served.engine = await makeEngine();
    served.server = await startServer({
      engine: served.engine,
      config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "1mb", ...settings },
      logger: pino({ level: "silent" }),
    });
    served.url = `http://127.0.0.1:${served.server.port}`;
  });
  after(async () => {
    await served.server?.close();
    if (served.engine instanceof Engine) await served.engine.close();
  });
  return served;
}

/**
 * Puts two bad requests in flight on `path`: a client that sent half of its body and stalls, and
 * a stream the engine fails after 4 tokens (its response is returned once the headers are in).
 * Destroy `stalled` when done.
 */
export async function startBadRequests(
  served: Served<FakeEngine>,
  path: string,
  halfBody: string,
  streamBody: object,
): Promise<{ stalled: ClientRequest; failing: Response }> {
  const stalled = request({ host: "127.0.0.1", port: served.server.port, method: "POST", path, headers: { "Content-Length": "1000" } });
  stalled.on("error", () => undefined);
  stalled.write(halfBody);
  served.engine.tokenDelayMs = 30;
  served.engine.failAfterTokens = 4;
  try {
    const failing = await fetch(`${served.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(streamBody) });
    return { stalled, failing };
  } finally {
    served.engine.tokenDelayMs = 0;
    served.engine.failAfterTokens = undefined;
  }
}
