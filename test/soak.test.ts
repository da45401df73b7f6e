// Soak (docs/RELIABILITY.md): many streamed requests at 32 in flight, a fifth aborted by their
// client at a random point, against the real engine and server with stories260K. Every request
// not aborted ends well; afterwards nothing runs, no KV cell is held but idle cached prefixes, and
// memory does not grow from the first window of requests to the last. The default suite runs 300;
// `npm run test:soak` runs 5,000 (VLLAMA_SOAK_REQUESTS).
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { Engine } from "../src/engine/engine.js";
import { startServer, type RunningServer } from "../src/server/index.js";
import { storiesPath } from "./helpers/models.js";

const REQUESTS = Number(process.env.VLLAMA_SOAK_REQUESTS ?? 300);
const IN_FLIGHT = 32;
const ABORTED_SHARE = 0.2;
/** RSS is compared between the first and the last window of this many requests. */
const WINDOW = Math.min(1_000, Math.floor(REQUESTS / 3));
// The bound (10% from the first thousand to the last) holds for the 5,000-request soak. In
// the default suite's 300, a window is 100 requests, and V8's heap growing into its steady size
// alone moved RSS 183 -> 201 MiB (+9.8%) in a clean-clone run on 2026-12-02: there the bound only
// catches a leak that grows with the requests, at 1.5x.
const RSS_GROWTH_BOUND = REQUESTS >= 5_000 ? 1.1 : 1.5;

type Outcome = "done" | "aborted" | { failed: string };

describe(`soak: ${REQUESTS} requests, ${IN_FLIGHT} in flight, ${ABORTED_SHARE * 100}% aborted`, () => {
  let engine: Engine;
  let server: RunningServer;
  let url: string;
  before(async () => {
    engine = new Engine({ modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-soak-")), parallel: IN_FLIGHT, contextLength: 256 });
    server = await startServer({ engine, config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: "1mb" }, logger: pino({ level: "silent" }) });
    url = `http://127.0.0.1:${server.port}`;
  });
  after(async () => {
    await server.close();
    await engine.close();
  });

  /** One streamed generate or chat; an aborted one is cut by its client after a random wait, maybe before any byte. */
  async function one(i: number): Promise<Outcome> {
    const aborts = Math.random() < ABORTED_SHARE;
    const controller = new AbortController();
    if (aborts) setTimeout(() => controller.abort(), Math.random() * 200);
    const options = { num_predict: 1 + (i % 24), temperature: 0.8, seed: i };
    const [route, body] = i % 2
      ? ["/api/generate", { model: storiesPath, prompt: `Once upon a time ${i}`, options }]
      : ["/api/chat", { model: storiesPath, messages: [{ role: "user", content: `Tell me a story ${i}` }], options }];
    try {
      const res = await fetch(`${url}${route}`, { method: "POST", body: JSON.stringify(body), signal: controller.signal });
      const lines = (await res.text()).trim().split("\n").map((line) => JSON.parse(line));
      const last = lines.at(-1);
      if (res.status !== 200 || last?.done !== true || last.error !== undefined) return { failed: `${res.status} ${JSON.stringify(last)}` };
      return "done";
    } catch (error) {
      if (controller.signal.aborted) return "aborted";
      return { failed: String(error) };
    }
  }

  test("every request not aborted ends well; nothing is left running or held; RSS does not grow", { timeout: 3_600_000 }, async () => {
    const outcomes: Outcome[] = [];
    const rss: number[] = [];
    let next = 0;
    const worker = async () => {
      while (next < REQUESTS) {
        const i = next++;
        outcomes[i] = await one(i);
        const finished = outcomes.filter(Boolean).length;
        if (finished % WINDOW === 0) rss.push(process.memoryUsage().rss);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));

    const failures = outcomes.filter((o): o is { failed: string } => typeof o === "object");
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} of ${REQUESTS} failed`);
    const aborted = outcomes.filter((o) => o === "aborted").length;
    assert.ok(aborted > REQUESTS * ABORTED_SHARE * 0.5, `${aborted} aborted`);

    // The last aborted sequences leave within a step or two.
    const value = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "m").exec(engine.metrics())?.[1]);
    for (let waited = 0; value("vllm:num_requests_running") > 0 && waited < 5_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    assert.equal(value("vllm:num_requests_running"), 0);
    assert.equal(value("vllm:num_requests_waiting"), 0);
    assert.equal(value("vllm:kv_cache_usage_perc"), 0, "no cell held but by idle cached prefixes");

    const [first, last] = [rss[0]!, rss.at(-1)!];
    assert.ok(last < first * RSS_GROWTH_BOUND, `RSS ${Math.round(first / 2 ** 20)} MiB after the first ${WINDOW} requests, ${Math.round(last / 2 ** 20)} MiB after the last`);
    console.log(`soak: ${REQUESTS} requests, ${aborted} aborted, ${failures.length} failed; RSS ${Math.round(first / 2 ** 20)} -> ${Math.round(last / 2 ** 20)} MiB`);
  });
});
