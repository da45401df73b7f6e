// `vllama serve`: the configuration, a logger, the engine and the HTTP server; SIGINT/SIGTERM
// drain them in order (src/server/lifecycle.ts), a second signal exits at once. The engine and server are imported here, not at the top of the CLI, so
// client commands never load the native addon.
import { AddressInUseError } from "../api/errors.js";
import type { LoadedConfig } from "../config.js";
import { isLoopbackBind } from "../server/security.js";
import { createLogger } from "./logger.js";
import { CliError, type Ui } from "./ui.js";

function addressInUse(host: string, port: number, err: unknown): CliError {
  return new CliError(
    `address ${host}:${port} is already in use (is another vllama or ollama serving there?); ` +
      `choose another with --port ${port + 1} or OLLAMA_HOST=${host}:${port + 1}`,
    { cause: err },
  );
}

/** After the server drained, how long the engine (the step in flight, the models) gets to close. */
const ENGINE_CLOSE_MS = 5_000;

/** Whether `closing` settles within `ms`. */
function closeWithin(closing: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(false), ms);
    closing.then(() => resolve(true), reject).finally(() => clearTimeout(timer));
  });
}

/** Resolves when the server has closed after a signal. */
export async function serveCommand(ui: Ui, { config }: LoadedConfig): Promise<void> {
  const logger = createLogger(config.logLevel, ui.color);
  const [{ Engine }, { startServer }, { ensureBuiltinModel }] = await Promise.all([
    import("../engine/engine.js"), import("../server/index.js"), import("../models/builtin.js"),
  ]);
  const engine = new Engine({
    modelsDir: config.modelsDir,
    parallel: config.parallel,
    maxQueue: config.maxQueue,
    maxLoadedModels: config.maxLoadedModels,
    keepAliveMs: config.keepAliveMs,
    contextLength: config.contextLength,
    maxTokens: config.maxTokens,
    kvCells: config.kvCells,
    memoryShare: config.memoryShare,
    flashAttention: config.flashAttention,
    kvCacheType: config.kvCacheType,
    prefixCache: config.prefixCache,
    gpu: config.gpu,
    kvEventsEndpoint: config.kvEventsEndpoint,
    kvEventsPod: config.kvEventsPod,
    rpc: config.rpc,
    rpcTimeoutMs: config.rpcTimeoutMs === 0 ? Infinity : config.rpcTimeoutMs,
  }, { log: (message) => logger.info(message) });
  const demo = await ensureBuiltinModel(engine.store);
  if (demo) logger.warn({ model: demo }, `the model store ${config.modelsDir} is empty: serving the built-in demo model ${demo} (random weights; \`vllama pull\` a real one)`);
  logger.info(engine.backend(), "llama.cpp backend");
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer({ engine, config, logger });
  } catch (err) {
    await engine.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (err instanceof AddressInUseError || code === "EADDRINUSE") throw addressInUse(config.host, config.port, err);
    throw err;
  }
  if (config.apiKeys.length === 0 && !isLoopbackBind(config.host)) {
    logger.warn({ host: config.host }, `listening on ${config.host} without an API key: anyone who can reach this address can use it (set --api-key, VLLAMA_API_KEY or --api-keys-file)`);
  }
  const host = server.host.includes(":") ? `[${server.host}]` : server.host;
  logger.info({ url: `http://${host}:${server.port}`, version: engine.version }, "vllama is listening");
  if (!ui.quiet) ui.stdout.write(`Listening on http://${host}:${server.port} (vllama ${engine.version})\n`);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting without waiting");
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal, shutdownTimeoutMs: config.shutdownTimeout }, "shutting down: draining running requests");
      // The server first: it stops taking requests and ends the running ones by the deadline.
      server
        .close()
        .then(() => closeWithin(engine.close(), ENGINE_CLOSE_MS))
        .then((closed) => {
          if (closed) return;
          // A native step that does not return cannot hold the exit: its thread dies with the process.
          logger.error({ waitedMs: ENGINE_CLOSE_MS }, "the engine did not close in time (a native step still running): exiting");
          process.exit(0);
        })
        .catch((err: unknown) => logger.error({ err }, "error while shutting down"))
        .finally(resolve);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
