// The Express application and its listener.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express, { type Express } from "express";
import { AddressInUseError } from "../api/errors.js";
import { accessLog } from "./access-log.js";
import type { ServerDeps } from "./context.js";
import { errorMiddleware, unknownRoute } from "./errors.js";
import { routeTable } from "./routes.js";
import { cors, hostGuard } from "./security.js";
import { attachWebSockets } from "./ws.js";

export function createApp(deps: ServerDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  // Clients (curl among them) often send JSON without a JSON content type, and Ollama reads
  // every body as JSON, so the parser ignores Content-Type.
  const jsonBody = express.json({ limit: deps.config.bodyLimit, type: () => true });

  app.use(accessLog(deps.logger));
  app.use(hostGuard(deps.config.host));
  app.use(cors(deps.config.origins));
  for (const route of routeTable(deps)) {
    const handlers = route.body === "json" ? [jsonBody, route.handler] : [route.handler];
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
  /** Stops accepting connections, ends open ones, and resolves when the server is closed. */
  close(): Promise<void>;
}

/** Listens on `config.host:config.port` (port 0 picks a free one) and resolves with the bound address. */
export function startServer(deps: ServerDeps): Promise<RunningServer> {
  const { host, port } = deps.config;
  // Generations and blob uploads can run for a long time: no request timeout, as Ollama.
  const server = createServer({ requestTimeout: 0 }, createApp(deps));
  const webSockets = attachWebSockets(server, deps);
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
        close: () =>
          new Promise((done, fail) => {
            server.close((err) => (err ? fail(err) : done()));
            server.closeAllConnections();
            webSockets.close();
          }),
      });
    });
  });
}
