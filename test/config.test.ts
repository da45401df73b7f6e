// Configuration: precedence (flag > env > file > default), every environment variable, the
// errors for bad values, and the recorded source of each value.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError, loadConfig, type LoadConfigInput } from "../src/config.js";

const dir = mkdtempSync(join(tmpdir(), "vllama-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function configFile(content: unknown): string {
  const path = join(dir, `config-${fileCount++}.json`);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

/** No config file unless the test names one: a missing default file is not an error. */
function load(input: LoadConfigInput) {
  return loadConfig({ env: {}, file: input.file ?? configFile({}), ...input });
}

function loadError(input: LoadConfigInput): string {
  try {
    load(input);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.message;
  }
  assert.fail("expected an error");
}

describe("defaults", () => {
  it("match Ollama's, with vllama's batching defaults", () => {
    const { config, sources, clientUrl } = load({});
    assert.equal(config.host, "127.0.0.1");
    assert.equal(config.port, 11434);
    assert.equal(config.keepAliveMs, 5 * 60_000);
    assert.equal(config.parallel, 32);
    assert.equal(config.maxLoadedModels, 3);
    assert.equal(config.maxQueue, 512);
    assert.equal(config.contextLength, undefined);
    assert.deepEqual(config.origins, []);
    assert.equal(config.flashAttention, "auto");
    assert.equal(config.kvCacheType, "f16");
    assert.equal(config.gpu, "auto");
    assert.equal(config.kvCells, undefined);
    assert.equal(config.prefixCache, true);
    assert.equal(config.logLevel, "info");
    assert.equal(config.bodyLimit, "100mb");
    assert.match(config.modelsDir, /\.ollama[/\\]models$/);
    assert.equal(clientUrl, "http://127.0.0.1:11434");
    assert.ok(Object.values(sources).every((s) => s === "default"));
    assert.equal(sources.kvCells, "default");
  });
});

describe("environment", () => {
  const cases: Array<[string, string, keyof ReturnType<typeof load>["config"], unknown]> = [
    ["OLLAMA_MODELS", "/tmp/vllama-models", "modelsDir", "/tmp/vllama-models"],
    ["OLLAMA_KEEP_ALIVE", "10m", "keepAliveMs", 600_000],
    ["OLLAMA_KEEP_ALIVE", "90", "keepAliveMs", 90_000],
    ["OLLAMA_KEEP_ALIVE", "1h30m", "keepAliveMs", 5_400_000],
    ["OLLAMA_KEEP_ALIVE", "-1", "keepAliveMs", Infinity],
    ["OLLAMA_KEEP_ALIVE", "0", "keepAliveMs", 0],
    ["OLLAMA_NUM_PARALLEL", "8", "parallel", 8],
    ["OLLAMA_MAX_LOADED_MODELS", "2", "maxLoadedModels", 2],
    ["OLLAMA_MAX_QUEUE", "64", "maxQueue", 64],
    ["OLLAMA_CONTEXT_LENGTH", "8192", "contextLength", 8192],
    ["OLLAMA_ORIGINS", "https://a.example, app://x,,", "origins", ["https://a.example", "app://x"]],
    ["OLLAMA_FLASH_ATTENTION", "1", "flashAttention", "on"],
    ["OLLAMA_FLASH_ATTENTION", "false", "flashAttention", "off"],
    ["OLLAMA_FLASH_ATTENTION", "auto", "flashAttention", "auto"],
    ["OLLAMA_KV_CACHE_TYPE", "q8_0", "kvCacheType", "q8_0"],
    ["OLLAMA_KV_CACHE_TYPE", "q4_0", "kvCacheType", "q4_0"],
    ["VLLAMA_GPU", "cpu", "gpu", "cpu"],
    ["VLLAMA_GPU", "cuda", "gpu", "cuda"],
    ["VLLAMA_KV_CELLS", "65536", "kvCells", 65536],
    ["VLLAMA_PREFIX_CACHE", "off", "prefixCache", false],
    ["VLLAMA_PREFIX_CACHE", "on", "prefixCache", true],
    ["VLLAMA_LOG_LEVEL", "debug", "logLevel", "debug"],
    ["VLLAMA_BODY_LIMIT", "512kb", "bodyLimit", "512kb"],
    ["VLLAMA_NUM_PARALLEL", "4", "parallel", 4],
    ["VLLAMA_MODELS", "/srv/models", "modelsDir", "/srv/models"],
  ];
  for (const [name, value, key, expected] of cases) {
    it(`${name}=${value} sets ${key}`, () => {
      const { config, sources } = load({ env: { [name]: value } });
      assert.deepEqual(config[key], expected);
      assert.equal(sources[key], `env:${name}`);
    });
  }

  it("OLLAMA_HOST: host[:port], scheme optional, IPv6, wildcard", () => {
    const read = (value: string) => {
      const { config, sources, clientUrl } = load({ env: { OLLAMA_HOST: value } });
      return { host: config.host, port: config.port, clientUrl, hostSource: sources.host, portSource: sources.port };
    };
    assert.deepEqual(read("0.0.0.0"), {
      host: "0.0.0.0", port: 11434, clientUrl: "http://127.0.0.1:11434", hostSource: "env:OLLAMA_HOST", portSource: "default",
    });
    assert.deepEqual(read("example.com:8080"), {
      host: "example.com", port: 8080, clientUrl: "http://example.com:8080", hostSource: "env:OLLAMA_HOST", portSource: "env:OLLAMA_HOST",
    });
    assert.equal(read("https://example.com").port, 443);
    assert.equal(read("https://example.com").clientUrl, "https://example.com:443");
    assert.equal(read("http://example.com").port, 80);
    assert.deepEqual([read("[::1]:9000").host, read("[::1]:9000").port, read("[::1]:9000").clientUrl], ["::1", 9000, "http://[::1]:9000"]);
    assert.deepEqual([read(":9000").host, read(":9000").port], ["0.0.0.0", 9000]);
  });

  it("VLLAMA_* wins over OLLAMA_*", () => {
    const { config, sources } = load({ env: { OLLAMA_NUM_PARALLEL: "2", VLLAMA_NUM_PARALLEL: "6", OLLAMA_HOST: "1.1.1.1", VLLAMA_HOST: "2.2.2.2" } });
    assert.equal(config.parallel, 6);
    assert.equal(sources.parallel, "env:VLLAMA_NUM_PARALLEL");
    assert.equal(config.host, "2.2.2.2");
  });

  it("an empty variable counts as unset", () => {
    assert.equal(load({ env: { OLLAMA_NUM_PARALLEL: "" } }).sources.parallel, "default");
  });
});

describe("bad values name the variable and the accepted values", () => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ OLLAMA_NUM_PARALLEL: "many" }, /^invalid OLLAMA_NUM_PARALLEL="many": expected an integer >= 1$/],
    [{ OLLAMA_NUM_PARALLEL: "0" }, /OLLAMA_NUM_PARALLEL="0": expected an integer >= 1/],
    [{ OLLAMA_MAX_QUEUE: "1.5" }, /OLLAMA_MAX_QUEUE="1.5"/],
    [{ OLLAMA_CONTEXT_LENGTH: "-4" }, /OLLAMA_CONTEXT_LENGTH/],
    [{ OLLAMA_MAX_LOADED_MODELS: "x" }, /OLLAMA_MAX_LOADED_MODELS/],
    [{ OLLAMA_KEEP_ALIVE: "soon" }, /OLLAMA_KEEP_ALIVE="soon": expected seconds or a Go duration/],
    [{ OLLAMA_KV_CACHE_TYPE: "q5_1" }, /OLLAMA_KV_CACHE_TYPE="q5_1": expected f16, q8_0, q4_0/],
    [{ OLLAMA_FLASH_ATTENTION: "maybe" }, /OLLAMA_FLASH_ATTENTION="maybe": expected auto, on, off/],
    [{ VLLAMA_GPU: "metal" }, /VLLAMA_GPU="metal": expected auto, cuda, cpu/],
    [{ VLLAMA_KV_CELLS: "lots" }, /VLLAMA_KV_CELLS/],
    [{ VLLAMA_PREFIX_CACHE: "sometimes" }, /VLLAMA_PREFIX_CACHE="sometimes": expected on, off/],
    [{ VLLAMA_LOG_LEVEL: "loud" }, /VLLAMA_LOG_LEVEL="loud": expected fatal, error, warn, info, debug, trace, silent/],
    [{ VLLAMA_BODY_LIMIT: "big" }, /VLLAMA_BODY_LIMIT="big": expected a byte count/],
    [{ OLLAMA_HOST: "example.com:99999" }, /OLLAMA_HOST="example.com:99999": expected host\[:port\]/],
    [{ OLLAMA_HOST: "example.com:" }, /OLLAMA_HOST/],
    [{ VLLAMA_RPC: "10.0.0.2" }, /^invalid VLLAMA_RPC="10.0.0.2": expected comma-separated host:port of `vllama worker`s/],
    [{ VLLAMA_RPC: "10.0.0.2:50052,10.0.0.3:99999" }, /VLLAMA_RPC="10.0.0.2:50052,10.0.0.3:99999"/],
    [{ VLLAMA_RPC: "[::1]:50052" }, /VLLAMA_RPC/],
    [{ VLLAMA_RPC: "a:1,a:1" }, /VLLAMA_RPC/],
    [{ VLLAMA_RPC_TIMEOUT: "soon" }, /VLLAMA_RPC_TIMEOUT="soon": expected seconds or a Go duration/],
  ];
  for (const [env, pattern] of cases) {
    it(JSON.stringify(env), () => assert.match(loadError({ env }), pattern));
  }

  it("flags are named as flags", () => {
    assert.match(loadError({ flags: { parallel: "0" } }), /^invalid --parallel="0": expected an integer >= 1$/);
    assert.match(loadError({ flags: { port: "70000" } }), /^invalid --port="70000": expected a port number 0-65535/);
    assert.match(loadError({ flags: { kvCacheType: "bf16" } }), /--kv-cache-type="bf16"/);
    assert.match(loadError({ flags: { rpc: "worker-1" } }), /^invalid --rpc="worker-1": expected comma-separated host:port/);
  });

  it("RPC workers: a comma-separated list, spaces trimmed; the timeout a duration", () => {
    const { config } = load({ env: { VLLAMA_RPC: " 10.0.0.2:50052, gpu-box:50053 ", VLLAMA_RPC_TIMEOUT: "30s" } });
    assert.deepEqual(config.rpc, ["10.0.0.2:50052", "gpu-box:50053"]);
    assert.equal(config.rpcTimeoutMs, 30_000);
    assert.deepEqual(load({}).config.rpc, []);
    assert.equal(load({}).config.rpcTimeoutMs, 120_000);
  });

  it("remote images: on by default with a 20 MB and 10 s limit; each setting from env and flags", () => {
    const defaults = load({}).config;
    assert.deepEqual([defaults.remoteImages, defaults.remoteImageLimit, defaults.remoteImageTimeout], [true, "20mb", 10_000]);
    const { config } = load({ env: { VLLAMA_REMOTE_IMAGES: "off", VLLAMA_REMOTE_IMAGE_LIMIT: "5mb", VLLAMA_REMOTE_IMAGE_TIMEOUT: "3s" } });
    assert.deepEqual([config.remoteImages, config.remoteImageLimit, config.remoteImageTimeout], [false, "5mb", 3_000]);
    assert.equal(load({ flags: { remoteImages: false } }).config.remoteImages, false);
    assert.match(loadError({ flags: { remoteImageLimit: "lots" } }), /^invalid --remote-image-limit="lots": expected a byte count/);
  });
});

describe("config file", () => {
  it("is read from the given path, $VLLAMA_CONFIG, with user-facing keys", () => {
    const file = configFile({ host: "0.0.0.0:8000", keepAlive: "1h", parallel: 16, prefixCache: false, origins: ["a", "b"] });
    for (const input of [{ file }, { env: { VLLAMA_CONFIG: file } }]) {
      const { config, sources } = loadConfig({ env: {}, ...input });
      assert.equal(config.host, "0.0.0.0");
      assert.equal(config.port, 8000);
      assert.equal(config.keepAliveMs, 3_600_000);
      assert.equal(config.parallel, 16);
      assert.equal(config.prefixCache, false);
      assert.deepEqual(config.origins, ["a", "b"]);
      assert.equal(sources.parallel, "file");
      assert.equal(sources.port, "file");
      assert.equal(sources.maxQueue, "default");
    }
  });

  it("errors name the file and the key", () => {
    assert.match(loadError({ file: configFile({ parallel: "lots" }) }), /invalid "parallel" in .*config-\d+\.json="lots": expected an integer/);
    assert.match(loadError({ file: configFile({ numParallel: 4 }) }), /unknown key "numParallel" in .*: accepted keys are host, port, modelsDir, keepAlive/);
    assert.match(loadError({ file: configFile("{ not json") }), /cannot read config file .*config-\d+\.json/);
    assert.match(loadError({ file: configFile([1, 2]) }), /invalid config file .*: expected a JSON object/);
    assert.match(loadError({ file: join(dir, "missing.json") }), /cannot read config file .*missing\.json: file not found/);
  });
});

describe("precedence: flag > env > file > default", () => {
  const file = configFile({ parallel: 2, maxQueue: 10, contextLength: 1024, host: "10.0.0.1:7000" });

  it("each key comes from the highest source that sets it", () => {
    const { config, sources } = loadConfig({
      file,
      env: { OLLAMA_NUM_PARALLEL: "4", OLLAMA_MAX_QUEUE: "20", OLLAMA_HOST: "0.0.0.0" },
      flags: { parallel: "8" },
    });
    assert.deepEqual(
      [config.parallel, config.maxQueue, config.contextLength, config.maxLoadedModels],
      [8, 20, 1024, 3],
    );
    assert.deepEqual(
      [sources.parallel, sources.maxQueue, sources.contextLength, sources.maxLoadedModels],
      ["flag", "env:OLLAMA_MAX_QUEUE", "file", "default"],
    );
    // The env address has no port: the file's port still applies.
    assert.deepEqual([config.host, config.port, sources.host, sources.port], ["0.0.0.0", 7000, "env:OLLAMA_HOST", "file"]);
  });

  it("--port overrides the port of --host and of OLLAMA_HOST", () => {
    const { config, sources, clientUrl } = loadConfig({ file, env: { OLLAMA_HOST: "127.0.0.1:5000" }, flags: { host: "localhost:6000", port: 6001 } });
    assert.deepEqual([config.host, config.port, sources.host, sources.port], ["localhost", 6001, "flag", "flag"]);
    assert.equal(clientUrl, "http://localhost:6001");
  });

  it("typed flag values (booleans, numbers) are accepted", () => {
    const { config } = load({ flags: { prefixCache: false, parallel: 3, flashAttention: true } });
    assert.deepEqual([config.prefixCache, config.parallel, config.flashAttention], [false, 3, "on"]);
  });
});
