// vllama as a library: the engine in-process, with the same request and response shapes as the
// HTTP API, and the server for apps that want to mount it.
export { Engine, type EngineOptions } from "./engine/engine.js";
export { createApp, startServer } from "./server/index.js";
export { loadConfig, type ServerConfig } from "./config.js";
export { ModelStore, defaultModelsDir } from "./models/store.js";
export * from "./api/errors.js";
export type * from "./api/ollama.js";
export type * from "./api/openai.js";
export type * from "./api/shared-fields.js";
export type { EngineService, RequestInit } from "./api/engine-contract.js";
