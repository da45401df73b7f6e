// Server configuration: one table of settings, each readable from a CLI flag, environment
// variables (vllama's own name first, then Ollama's) and the config file, validated with zod.
// Precedence per setting: flag > environment > config file > default.
import { existsSync, readFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { VllamaError } from "./api/errors.js";
import {
  FlashAttentionSchema,
  GpuChoiceSchema,
  KvCacheTypeSchema,
  parseKeepAlive,
  type FlashAttention,
  type GpuChoice,
  type KvCacheType,
} from "./engine/options.js";
import { parseTcpEndpoint } from "./kv-events/zmtp-pub.js";
import { parseRpcWorkers } from "./engine/rpc-workers.js";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface ServerConfig {
  /** Bind address ("127.0.0.1", "0.0.0.0", "::1"), without brackets. */
  host: string;
  port: number;
  /** Ollama-layout model store (manifests/ and blobs/). */
  modelsDir: string;
  /** Default keep-alive of a loaded model; Infinity = never unload, 0 = unload when idle. */
  keepAliveMs: number;
  /** Running sequences per model, batched together every step (not fixed slots). */
  parallel: number;
  maxLoadedModels: number;
  /** Waiting requests beyond which new ones get 503 "server busy". */
  maxQueue: number;
  /** Default context length of one sequence (num_ctx); undefined = sized per model with its KV cache. */
  contextLength?: number;
  /** Extra allowed CORS origins, beyond the local ones that are always allowed. */
  origins: string[];
  flashAttention: FlashAttention;
  kvCacheType: KvCacheType;
  gpu: GpuChoice;
  /** Total KV cells of a model's unified cache; undefined = sized from memory by the engine. */
  kvCells?: number;
  /** Share of the memory left after the weights that the KV cache takes; undefined = by device. */
  memoryShare?: number;
  prefixCache: boolean;
  logLevel: LogLevel;
  /** Largest accepted request body, in Express's notation ("100mb", "512kb", "1048576"). */
  bodyLimit: string;
  /** Directories path models may be served from over HTTP; none: any path, but only on a loopback bind. */
  allowPaths: string[];
  /** Most messages (chat turns, Responses input items) one request may bring. */
  maxMessages: number;
  /** Most tokens one request may generate, whatever it asks (num_predict -1 included); undefined: no cap. */
  maxTokens?: number;
  /** Most text one request's prompt may hold (messages, prompt, input, system, tools), in bodyLimit's notation. */
  promptLimit: string;
  /** API keys a request must carry (none: no authentication), each with a name for logs and metrics. */
  apiKeys: ApiKey[];
  /** A JSON file of more keys by name, `{"alice": "sk-...", "ci": "sk-..."}`, added to `apiKeys`. */
  apiKeysFile?: string;
  /** Whether /metrics needs a key too (when keys are set); /health and /ready never do. */
  metricsAuth: boolean;
  /** Milliseconds (as Node's own server timeouts; 0 or Infinity: none) a client has to send its request headers. */
  headersTimeout: number;
  /** Milliseconds a request body may go without a byte arriving before the request gets 408. */
  bodyTimeout: number;
  /** Milliseconds a kept-alive connection may sit idle between requests before it is closed. */
  idleTimeout: number;
  /** Milliseconds a response may wait for a client that stopped reading before it is cancelled. */
  writeTimeout: number;
  /** Milliseconds running requests get to finish after SIGTERM/SIGINT before they are ended (Infinity: no deadline). */
  shutdownTimeout: number;
  /** Where the prefix cache's block events go (vLLM's KV events over ZeroMQ); undefined = nowhere. */
  kvEventsEndpoint?: string;
  /** The pod named in the KV events' topic kv@POD@MODEL (in Kubernetes: the pod's IP). */
  kvEventsPod: string;
  /** `vllama worker`s (host:port) every model's layers are spread over with the local device; none: all local. */
  rpc: string[];
  /** Milliseconds an RPC worker may take to accept or answer before it counts as lost (Infinity: no limit). */
  rpcTimeoutMs: number;
  /** Whether images named by an http(s) URL (OpenAI's image_url, Anthropic's url source) are fetched; off: a 400. */
  remoteImages: boolean;
  /** Largest image fetched from a URL, in bodyLimit's notation. */
  remoteImageLimit: string;
  /** Milliseconds fetching one image URL may take, body included (0 or Infinity: no limit). */
  remoteImageTimeout: number;
}

export interface ApiKey {
  /** Said in logs and metrics instead of the key. */
  name: string;
  key: string;
}

export type ConfigKey = keyof ServerConfig;
export type ConfigSource = "flag" | `env:${string}` | "file" | "default";
export type RawValue = string | number | boolean | string[];

export interface LoadConfigInput {
  /** Parsed CLI flags by config key (yargs camel-cases `--parallel` to `parallel`). */
  flags?: Partial<Record<ConfigKey, RawValue | undefined>>;
  env?: NodeJS.ProcessEnv;
  /** Config file path; default `$VLLAMA_CONFIG`, else `~/.vllama/config.json` if it exists. */
  file?: string;
}

export interface LoadedConfig {
  config: ServerConfig;
  sources: Record<ConfigKey, ConfigSource>;
  /** Base URL a client uses to reach this server (wildcard hosts become loopback). */
  clientUrl: string;
}

export class ConfigError extends VllamaError {
  constructor(
    message: string,
    /** Where the bad value came from: a bad flag is a usage error of the CLI. */
    readonly origin: "flag" | "env" | "file",
  ) {
    super(message, 400, "invalid_config");
  }
}

export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 11434;

// ---------------------------------------------------------------------------------------------
// Value parsers: each accepts the raw text of an env var, or a typed value from flags/file

function isTcpEndpoint(endpoint: string): boolean {
  try {
    return parseTcpEndpoint(endpoint) !== undefined;
  } catch {
    return false;
  }
}

const text = z.union([z.string(), z.number()]).transform((v) => String(v).trim());
const integer = (min: number) =>
  z.union([z.int(), z.string().trim().regex(/^\d+$/).transform(Number)]).pipe(z.int().min(min));
const boolean = z.union([
  z.boolean(),
  z.stringbool({ truthy: ["1", "true", "t", "on", "yes"], falsy: ["0", "false", "f", "off", "no"] }),
]);
const share = z.union([z.number(), z.string().trim().regex(/^\d*\.?\d+$/).transform(Number)]).pipe(z.number().gt(0).max(1));
const list = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (typeof v === "string" ? v.split(",") : v).map((s) => s.trim()).filter((s) => s !== ""));
/** Seconds or a Go duration ("30s", "5m", "-1" forever), as milliseconds. */
const duration = z
  .union([z.number(), z.string().trim()])
  .transform((v, ctx) => {
    try {
      return parseKeepAlive(v, 0);
    } catch {
      ctx.addIssue({ code: "custom", message: "invalid duration" });
      return z.NEVER;
    }
  });
const rpcWorkers = z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
  try {
    return parseRpcWorkers(v);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
    return z.NEVER;
  }
});
const apiKeyList = list.transform((keys) => keys.map((key, i): ApiKey => ({ name: `key${i + 1}`, key })));
const DURATION = 'seconds or a Go duration such as "30s", "2m" (0 or "-1": no limit)';
const flashAttention = z.union([
  FlashAttentionSchema,
  boolean.transform((on): FlashAttention => (on ? "on" : "off")),
]);
const bodyLimit = z
  .union([z.int().min(1).transform(String), z.string().trim().toLowerCase().regex(/^\d+(\.\d+)?\s*(b|kb|mb|gb)?$/)]);

/** host[:port] with an optional scheme, as OLLAMA_HOST: parsed into the parts that were given. */
interface Address {
  scheme: "http" | "https";
  host?: string;
  port?: number;
}

function parseAddress(raw: string): Address | undefined {
  const match = /^(?:(https?):\/\/)?([^/]*?)(?:\/.*)?$/i.exec(raw.trim());
  if (!match) return undefined;
  const scheme = (match[1]?.toLowerCase() ?? "http") as Address["scheme"];
  const hostPort = match[2]!;
  // [v6]:port, [v6], v6 alone (more than one colon), host:port, host
  const parts = /^\[([^\]]+)\](?::(\d*))?$/.exec(hostPort) ??
    (hostPort.split(":").length > 2 ? [hostPort, hostPort, undefined] : /^([^:]*)(?::(\d*))?$/.exec(hostPort));
  if (!parts) return undefined;
  const [, host, portText] = parts;
  let port: number | undefined;
  if (portText !== undefined && portText !== "") {
    port = Number(portText);
    if (!Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  } else if (match[1]) {
    // An explicit scheme without a port means that scheme's port, as Ollama reads it.
    port = scheme === "https" ? 443 : 80;
  } else if (portText === "") {
    return undefined;
  }
  // ":8080" binds every interface, as Go's net.Listen does.
  return { scheme, host: host === "" ? (port === undefined ? undefined : "0.0.0.0") : host, port };
}

const address = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const parsed = parseAddress(String(v));
  if (!parsed || parsed.host === undefined && parsed.port === undefined) {
    ctx.addIssue({ code: "custom", message: "invalid address" });
    return z.NEVER;
  }
  return parsed;
});

// ---------------------------------------------------------------------------------------------
// The settings table

interface Setting {
  key: ConfigKey;
  /** Environment variables, first set wins. */
  env: string[];
  /** The `--kebab-case` flag name, for messages. */
  flag: string;
  /** Older flag names still accepted, so scripts written for earlier releases keep working. */
  flagAliases?: string[];
  /** Key in config.json (user-facing names: "keepAlive" is a duration, not milliseconds). */
  fileKey: string;
  schema: z.ZodType<unknown, any>;
  accepted: string;
  defaultValue: () => ServerConfig[ConfigKey];
}

function setting(
  key: ConfigKey,
  env: string[],
  schema: z.ZodType<unknown, any>,
  accepted: string,
  defaultValue: () => ServerConfig[ConfigKey],
  fileKey: string = key,
): Setting {
  return { key, env, flag: flagName(key), fileKey, schema, accepted, defaultValue };
}

const both = (name: string) => [`VLLAMA_${name}`, `OLLAMA_${name}`];

/** host and port share one source string (OLLAMA_HOST), so they are read together below. */
const SETTINGS: Setting[] = [
  setting("modelsDir", both("MODELS"), text.pipe(z.string().min(1)), "a directory path",
    () => join(homedir(), ".ollama", "models")), // ModelStore's default too: the store Ollama uses
  setting("keepAliveMs", both("KEEP_ALIVE"), duration, 'seconds or a Go duration such as "5m", "1h30m", "-1" (forever)',
    () => 5 * 60_000, "keepAlive"),
  // --num-parallel was the flag's name until 2026-12-01; it is kept as an alias.
  { ...setting("parallel", both("NUM_PARALLEL"), integer(1), "an integer >= 1", () => 32), flagAliases: ["--num-parallel"] },
  setting("maxLoadedModels", both("MAX_LOADED_MODELS"), integer(1), "an integer >= 1", () => 3),
  setting("maxQueue", both("MAX_QUEUE"), integer(1), "an integer >= 1", () => 512),
  setting("contextLength", both("CONTEXT_LENGTH"), integer(1), "an integer >= 1", () => undefined),
  setting("origins", both("ORIGINS"), list, "a comma-separated list of origins", () => []),
  setting("flashAttention", both("FLASH_ATTENTION"), flashAttention, `${FlashAttentionSchema.options.join(", ")}, true, false, 1, 0`, () => "auto"),
  setting("kvCacheType", both("KV_CACHE_TYPE"), text.pipe(KvCacheTypeSchema), KvCacheTypeSchema.options.join(", "), () => "f16"),
  setting("gpu", ["VLLAMA_GPU"], text.pipe(GpuChoiceSchema), GpuChoiceSchema.options.join(", "), () => "auto"),
  setting("kvCells", ["VLLAMA_KV_CELLS"], integer(1), "an integer >= 1", () => undefined),
  setting("memoryShare", ["VLLAMA_KV_MEMORY_SHARE"], share, "a number > 0 and <= 1", () => undefined),
  setting("prefixCache", ["VLLAMA_PREFIX_CACHE"], boolean, "on, off, true, false, 1, 0", () => true),
  setting("logLevel", ["VLLAMA_LOG_LEVEL"],
    text.pipe(z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])),
    "fatal, error, warn, info, debug, trace, silent", () => "info"),
  setting("bodyLimit", ["VLLAMA_BODY_LIMIT"], bodyLimit, 'a byte count or a size such as "512kb", "100mb"', () => "100mb"),
  // A chat template renders on the JS thread, about 0.1 ms a message with Qwen2.5's on 2 shared
  // cores (2026-12-01): 4,096 messages hold it some 0.4 s. 8 MiB of text is about 2M tokens,
  // beyond any model's context.
  // `--allow-path DIR`, once per directory, reads as the list it adds to.
  { ...setting("allowPaths", ["VLLAMA_ALLOW_PATHS"], list, "a comma-separated list of directories", () => []), flagAliases: ["--allow-path"] },
  setting("maxMessages", ["VLLAMA_MAX_MESSAGES"], integer(1), "an integer >= 1", () => 4096),
  // No cap by default, as Ollama: a request at num_predict -1 stops at its context's end.
  setting("maxTokens", ["VLLAMA_MAX_TOKENS"], integer(1), "an integer >= 1", () => undefined),
  setting("promptLimit", ["VLLAMA_PROMPT_LIMIT"], bodyLimit, 'a byte count or a size such as "512kb", "8mb"', () => "8mb"),
  setting("apiKeys", ["VLLAMA_API_KEY"], apiKeyList, "a key, or comma-separated keys", () => [], "apiKey"),
  setting("apiKeysFile", ["VLLAMA_API_KEYS_FILE"], text.pipe(z.string().min(1)), "a file path", () => undefined),
  setting("metricsAuth", ["VLLAMA_METRICS_AUTH"], boolean, "on, off, true, false, 1, 0", () => false),
  ...[
    // Node's default for headers is 60 s; a slowloris client held a connection that long for nothing.
    setting("headersTimeout", ["VLLAMA_HEADERS_TIMEOUT"], duration, DURATION, () => 10_000),
    setting("bodyTimeout", ["VLLAMA_BODY_TIMEOUT"], duration, DURATION, () => 30_000),
    setting("idleTimeout", ["VLLAMA_IDLE_TIMEOUT"], duration, DURATION, () => 5_000),
    setting("writeTimeout", ["VLLAMA_WRITE_TIMEOUT"], duration, DURATION, () => 60_000),
    // Kubernetes' default grace period is 30 s: leave some of it for the final writes and the exit.
    setting("shutdownTimeout", ["VLLAMA_SHUTDOWN_TIMEOUT"], duration,
      'seconds or a Go duration such as "30s" (0: end running requests at once, "-1": wait for them)', () => 25_000),
  ],
  setting("kvEventsEndpoint", ["VLLAMA_KV_EVENTS_ENDPOINT"], text.refine(isTcpEndpoint),
    "tcp://*:PORT (bind) or tcp://HOST:PORT (connect)", () => undefined),
  setting("kvEventsPod", ["VLLAMA_KV_EVENTS_POD"], text.pipe(z.string().min(1)), "a name or address", () => hostname()),
  setting("rpc", ["VLLAMA_RPC"], rpcWorkers,
    "comma-separated host:port of `vllama worker`s (IPv4 or host names, each once), e.g. 10.0.0.2:50052,10.0.0.3:50052", () => []),
  // A step of a large model's prompt chunk on a CPU worker can take tens of seconds.
  setting("rpcTimeoutMs", ["VLLAMA_RPC_TIMEOUT"], duration, DURATION, () => 120_000, "rpcTimeout"),
  // On by default, as OpenAI's and Anthropic's APIs and vLLM take image URLs and their clients
  // send them; bounded in size, time and scheme (src/server/remote-images.ts). A server reachable
  // by untrusted clients can turn it off (--no-remote-images), so it never fetches on their behalf.
  setting("remoteImages", ["VLLAMA_REMOTE_IMAGES"], boolean, "on, off, true, false, 1, 0", () => true),
  // 20 MiB: the largest image OpenAI's API takes.
  setting("remoteImageLimit", ["VLLAMA_REMOTE_IMAGE_LIMIT"], bodyLimit, 'a byte count or a size such as "512kb", "20mb"', () => "20mb"),
  setting("remoteImageTimeout", ["VLLAMA_REMOTE_IMAGE_TIMEOUT"], duration, DURATION, () => 10_000),
];
const HOST_ENV = both("HOST");
const HOST_ACCEPTED = "host[:port] with an optional http:// or https://, e.g. 127.0.0.1:11434 or 0.0.0.0";
const FILE_KEYS = ["host", "port", ...SETTINGS.map((s) => s.fileKey)];

// ---------------------------------------------------------------------------------------------
// Sources

/** One source's raw values by config key, and the name each came under (for messages). */
interface Layer {
  kind: "flag" | "env" | "file";
  values: Map<string, RawValue>;
  /** flag: "--parallel"; env: "OLLAMA_NUM_PARALLEL"; file: "parallel" */
  names: Map<string, string>;
  path?: string;
}

function origin(layer: Layer, key: string): string {
  const name = layer.names.get(key) ?? key;
  return layer.kind === "file" ? `"${name}" in ${layer.path}` : name;
}

function sourceOf(layer: Layer, key: string): ConfigSource {
  return layer.kind === "env" ? `env:${layer.names.get(key)}` : layer.kind;
}

function parseValue<T>(schema: z.ZodType<T, any>, raw: RawValue, layer: Layer, key: string, accepted: string): T {
  const result = schema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(`invalid ${origin(layer, key)}=${JSON.stringify(raw)}: expected ${accepted}`, layer.kind);
  }
  return result.data;
}

function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

function flagLayer(flags: LoadConfigInput["flags"]): Layer {
  const layer: Layer = { kind: "flag", values: new Map(), names: new Map() };
  for (const [key, value] of Object.entries(flags ?? {})) {
    if (value === undefined) continue;
    layer.values.set(key, value);
    layer.names.set(key, flagName(key));
  }
  return layer;
}

function envLayer(env: NodeJS.ProcessEnv): Layer {
  const layer: Layer = { kind: "env", values: new Map(), names: new Map() };
  const read = (key: string, names: string[]) => {
    const name = names.find((n) => env[n] !== undefined && env[n] !== "");
    if (name === undefined) return;
    layer.values.set(key, env[name]!);
    layer.names.set(key, name);
  };
  read("host", HOST_ENV);
  for (const s of SETTINGS) read(s.key, s.env);
  return layer;
}

function configFilePath(input: LoadConfigInput, env: NodeJS.ProcessEnv): { path: string; required: boolean } {
  if (input.file !== undefined) return { path: resolve(input.file), required: true };
  if (env.VLLAMA_CONFIG) return { path: resolve(env.VLLAMA_CONFIG), required: true };
  return { path: join(homedir(), ".vllama", "config.json"), required: false };
}

const FileShape = z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]));

function fileLayer(path: string, required: boolean): Layer {
  const layer: Layer = { kind: "file", values: new Map(), names: new Map(), path };
  if (!required && !existsSync(path)) return layer;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : (err as Error).message;
    throw new ConfigError(`cannot read config file ${path}: ${reason}`, "file");
  }
  const result = FileShape.safeParse(parsed);
  if (!result.success) {
    throw new ConfigError(`invalid config file ${path}: expected a JSON object of strings, numbers and booleans`, "file");
  }
  for (const [fileKey, value] of Object.entries(result.data)) {
    if (!FILE_KEYS.includes(fileKey)) {
      throw new ConfigError(`unknown key "${fileKey}" in ${path}: accepted keys are ${FILE_KEYS.join(", ")}`, "file");
    }
    const key = SETTINGS.find((s) => s.fileKey === fileKey)?.key ?? fileKey;
    layer.values.set(key, value);
    layer.names.set(key, fileKey);
  }
  return layer;
}

// ---------------------------------------------------------------------------------------------
// Resolution

interface Resolved<T> {
  value: T;
  source: ConfigSource;
}

/** host and port: an address string may give both, either, or (with --port / "port") only a port. */
function resolveAddress(layers: Layer[]): { host: Resolved<string>; port: Resolved<number>; scheme: Address["scheme"] } {
  let host: Resolved<string> | undefined;
  let port: Resolved<number> | undefined;
  let scheme: Address["scheme"] = "http";
  for (const layer of layers) {
    const explicitPort = layer.values.get("port");
    if (port === undefined && explicitPort !== undefined) {
      const value = parseValue(integer(0).pipe(z.int().max(65535)), explicitPort, layer, "port",
        "a port number 0-65535");
      port = { value, source: sourceOf(layer, "port") };
    }
    const raw = layer.values.get("host");
    if (raw === undefined) continue;
    const parsed = parseValue(address, raw, layer, "host", HOST_ACCEPTED);
    if (host === undefined && parsed.host !== undefined) {
      host = { value: parsed.host, source: sourceOf(layer, "host") };
      scheme = parsed.scheme;
    }
    if (port === undefined && parsed.port !== undefined) port = { value: parsed.port, source: sourceOf(layer, "host") };
  }
  return {
    host: host ?? { value: DEFAULT_HOST, source: "default" },
    port: port ?? { value: DEFAULT_PORT, source: "default" },
    scheme,
  };
}

function resolveSetting(setting: Setting, layers: Layer[]): Resolved<unknown> {
  for (const layer of layers) {
    const raw = layer.values.get(setting.key);
    if (raw === undefined) continue;
    const value = parseValue(setting.schema, raw, layer, setting.key, setting.accepted);
    return { value, source: sourceOf(layer, setting.key) };
  }
  return { value: setting.defaultValue(), source: "default" };
}

const ApiKeysFileShape = z.record(z.string().min(1), z.string().min(1));

function readApiKeysFile(path: string): ApiKey[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new ConfigError(`cannot read API keys file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, "file");
  }
  const result = ApiKeysFileShape.safeParse(parsed);
  if (!result.success) throw new ConfigError(`invalid API keys file ${path}: expected a JSON object of names to keys`, "file");
  return Object.entries(result.data).map(([name, key]) => ({ name, key }));
}

/** The address a client connects to for a server bound to `host`. */
export function connectHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

export function loadConfig(input: LoadConfigInput = {}): LoadedConfig {
  const env = input.env ?? process.env;
  const { path, required } = configFilePath(input, env);
  const layers = [flagLayer(input.flags), envLayer(env), fileLayer(path, required)];

  const address = resolveAddress(layers);
  const config: Record<string, unknown> = { host: address.host.value, port: address.port.value };
  const sources: Record<string, ConfigSource> = { host: address.host.source, port: address.port.source };
  for (const s of SETTINGS) {
    const { value, source } = resolveSetting(s, layers);
    if (value !== undefined) config[s.key] = value;
    sources[s.key] = source;
  }
  if (config.modelsDir !== undefined) config.modelsDir = resolve(config.modelsDir as string);
  if (config.apiKeysFile !== undefined) {
    config.apiKeysFile = resolve(config.apiKeysFile as string);
    config.apiKeys = [...(config.apiKeys as ApiKey[]), ...readApiKeysFile(config.apiKeysFile as string)];
  }
  return {
    config: config as unknown as ServerConfig,
    sources: sources as Record<ConfigKey, ConfigSource>,
    clientUrl: `${address.scheme}://${connectHost(address.host.value)}:${address.port.value}`,
  };
}

/** A setting's default, for embedders (tests, `startServer` callers) that give only some settings. */
export function defaultSetting<K extends ConfigKey>(key: K): ServerConfig[K] {
  const found = SETTINGS.find((s) => s.key === key);
  if (found === undefined) throw new Error(`no default for ${key}`);
  return found.defaultValue() as ServerConfig[K];
}

/** Flag names and their help, for the CLI to register (`serve` and `config`). */
export function configFlags(): Array<{ key: ConfigKey; flag: string; flagAliases?: string[]; env: string[]; accepted: string }> {
  return [
    { key: "port", flag: "--port", env: [], accepted: "a port number 0-65535 (overrides the port of --host)" },
    ...SETTINGS.map(({ key, flag, flagAliases, env, accepted }) => ({ key, flag, flagAliases, env, accepted })),
  ];
}
