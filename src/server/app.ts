// The Express application and its listener.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express, { type Express, type RequestHandler } from "express";
import { AddressInUseError } from "../api/errors.js";
import { accessLog } from "./access-log.js";
import { apiKeyAuth } from "./auth.js";
import { notes, withDefaults, type ServerDeps } from "./context.js";
import { errorMiddleware, unknownRoute } from "./errors.js";
import { Lifecycle } from "./lifecycle.js";
import { routeTable } from "./routes.js";
import { cors, hostGuard } from "./security.js";
import { attachWebSockets } from "./ws.js";
import { bodyTimeout, declaredLengthLimit, isLimited } from "./connection-limits.js";
import { jsonBodyParser } from "./json-body.js";
import { requestCheck, requestCheckMiddleware } from "./request-checks.js";

/** `jsonBody`'s worker threads do not keep the process alive; `startServer` stops them on close. */
export function createApp(
  deps: ServerDeps,
  lifecycle = new Lifecycle(),
  jsonBody = jsonBodyParser(deps.config.bodyLimit, withDefaults(deps.config)),
): Express {
  const settings = withDefaults(deps.config);
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  const readBody = bodyTimeout(settings.bodyTimeout);
  const declaredLength = declaredLengthLimit(settings.bodyLimit);
  const checkBody = requestCheckMiddleware(requestCheck(settings));
  const writeLimit: RequestHandler = (_req, res, next) => {
    notes(res).writeTimeout = settings.writeTimeout;
    next();
  };

  app.use(accessLog(deps.logger));
  app.use(hostGuard(settings.host));
  app.use(cors(settings.origins));
  app.use(apiKeyAuth(settings.apiKeys, settings.metricsAuth));
  app.use(lifecycle.tracker());
  app.use(writeLimit);
  for (const route of routeTable({ ...deps, lifecycle })) {
    const handlers = route.body === "none" ? [route.handler] : route.body === "json" ? [declaredLength, readBody, ...jsonBody.handlers, checkBody, route.handler] : [readBody, route.handler];
    app[route.method](route.path, ...handlers);
  }
  app.use(unknownRoute);
  app.use(errorMiddleware(deps.logger));
  return app;
}

export interface RunningServer {
  server: Server;
  host: string;
  port: number;
  /**
   * Drains: readiness fails and new requests get 503 at once, running ones get `shutdownTimeout`
   * to finish and are ended after it; then the listener and every connection close.
   */
  close(): Promise<void>;
}

/** Listens on `config.host:config.port` (port 0 picks a free one) and resolves with the bound address. */
export function startServer(deps: ServerDeps): Promise<RunningServer> {
  const settings = withDefaults(deps.config);
  const { host, port } = settings;
  const lifecycle = new Lifecycle();
  const jsonBody = jsonBodyParser(settings.bodyLimit, settings);
  // No whole-request timeout (blob uploads and generations run long): the body's idle time, the
  // headers' time and a stalled reader are limited instead (src/server/connection-limits.ts).
  const server = createServer(
    {
      requestTimeout: 0,
      headersTimeout: isLimited(settings.headersTimeout) ? settings.headersTimeout : 0,
      keepAliveTimeout: isLimited(settings.idleTimeout) ? settings.idleTimeout : 0,
      // How often Node checks the headers deadline (30 s by default): a tenth of it, at most 1 s.
      connectionsCheckingInterval: Math.min(1_000, Math.max(50, settings.headersTimeout / 10)),
    },
    createApp(deps, lifecycle, jsonBody),
  );
  const webSockets = attachWebSockets(server, deps, jsonBody);
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(err.code === "EADDRINUSE" ? new AddressInUseError(host, port) : err);
    });
    server.listen(port, host, () => {
      const address = server.address() as AddressInfo;
      resolve({
        server,
        host: address.address,
        port: address.port,
        close: async () => {
          // Still listening while draining: a request that arrives gets a fast 503 (which a load
          // balancer retries elsewhere) rather than a refused connection.
          server.closeIdleConnections();
          await lifecycle.drain(settings.shutdownTimeout);
          webSockets.close();
          const closed = new Promise<void>((done, fail) => server.close((err) => (err ? fail(err) : done())));
          server.closeAllConnections();
          await closed;
          await jsonBody.close();
        },
      });
    });
  });
}
