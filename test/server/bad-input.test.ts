// Edge parsing of the server's settings and a request's options, and a port already in use. The
// bad-input tables, one file per API family, are test/server/bad-input-*.test.ts.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { parseKeepAlive, resolveOptions } from "../../src/engine/options.js";
import { startServer, type RunningServer } from "../../src/server/index.js";
import { isAllowedHost, isLoopbackBind } from "../../src/server/security.js";
import { BODY_LIMIT } from "../helpers/bad-input.js";
import { FakeEngine } from "../helpers/fake-engine.js";

describe("a port in use", () => {
  let engine: FakeEngine;
  let server: RunningServer;

  before(async () => {
    engine = new FakeEngine();
    server = await startServer({
      engine,
      config: { host: "127.0.0.1", port: 0, origins: [], bodyLimit: BODY_LIMIT },
      logger: pino({ level: "silent" }),
    });
  });
  after(() => server.close());

  test("startServer reports a port in use, naming it", async () => {
    await assert.rejects(
      startServer({
        engine,
        config: { host: "127.0.0.1", port: server.port, origins: [], bodyLimit: BODY_LIMIT },
        logger: pino({ level: "silent" }),
      }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, "address_in_use");
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${server.port}`));
        return true;
      },
    );
  });
});

describe("edge parsing", () => {
  test("parses keep_alive as seconds or Go durations, negative meaning forever", () => {
    const defaultMs = 300_000;
    const cases: Array<[number | string | undefined, number]> = [
      [undefined, defaultMs],
      [0, 0],
      ["0", 0],
      [30, 30_000],
      ["300", 300_000],
      ["5m", 300_000],
      ["1h30m", 5_400_000],
      ["1.5s", 1500],
      ["250ms", 250],
      [-1, Infinity],
      ["-1m", Infinity],
    ];
    for (const [value, ms] of cases) assert.equal(parseKeepAlive(value, defaultMs), ms, String(value));
    assert.throws(() => parseKeepAlive("soon", defaultMs), /invalid keep_alive/);
  });

  test("resolves options: request over model parameters over Ollama defaults", () => {
    const resolved = resolveOptions({ temperature: 0.1, top_k: undefined }, { top_k: 20, temperature: 0.5 }, 2048);
    assert.equal(resolved.temperature, 0.1);
    assert.equal(resolved.top_k, 20);
    assert.equal(resolved.num_ctx, 2048);
    assert.equal(resolved.num_predict, -1);
    assert.equal(resolved.top_p, 0.9);
    assert.equal(resolved.repeat_last_n, 64);
    assert.equal(resolved.seed, -1);
    assert.equal(resolved.num_batch, 512);
    assert.deepEqual(resolved.stop, []);
  });

  test("allows only local Host headers on a loopback bind", () => {
    for (const host of [undefined, "localhost:11434", "127.0.0.1", "[::1]:11434", "box.local", "10.1.2.3:80", "0.0.0.0"]) {
      assert.ok(isAllowedHost(host), String(host));
    }
    for (const host of ["evil.example", "8.8.8.8:11434", "localhost.evil.example"]) {
      assert.ok(!isAllowedHost(host), host);
    }
    assert.ok(isLoopbackBind("127.0.0.1") && isLoopbackBind("::1") && isLoopbackBind("localhost"));
    assert.ok(!isLoopbackBind("0.0.0.0"));
  });
});
