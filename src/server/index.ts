export { createApp, startServer, type RunningServer } from "./app.js";
export type { ServerDeps, ServerSettings } from "./context.js";
