// Every route the server answers, in one table.
import type { RequestHandler } from "express";
import { anthropicHandlers } from "./anthropic.js";
import type { ServerDeps } from "./context.js";
import { metricsHandlers } from "./metrics.js";
import { ollamaHandlers } from "./ollama.js";
import { openAIHandlers } from "./openai.js";
import { responsesHandlers } from "./responses.js";
import { webHandlers } from "./web.js";
import { upgradeRequired, WS_PATH } from "./ws.js";

export interface Route {
  /** "get" also answers HEAD; "all" answers every method not routed before it. */
  method: "get" | "head" | "post" | "delete" | "all";
  path: string;
  /** "json": parsed (and size-limited) JSON body; "stream": the handler reads the raw request. */
  body: "none" | "json" | "stream";
  handler: RequestHandler;
}

export function routeTable(deps: ServerDeps): Route[] {
  const ollama = ollamaHandlers(deps);
  const openai = openAIHandlers(deps);
  const anthropic = anthropicHandlers(deps);
  const responses = responsesHandlers(deps);
  const metrics = metricsHandlers(deps);
  const web = webHandlers(ollama.root);
  return [
    { method: "get", path: "/", body: "none", handler: web.root },
    { method: "get", path: "/dashboard", body: "none", handler: web.dashboard },
    { method: "get", path: "/web/vendor/marked.js", body: "none", handler: web.marked },
    { method: "get", path: "/web/vendor/highlight/core.js", body: "none", handler: web.highlightCore },
    { method: "get", path: "/web/vendor/highlight/languages/*file", body: "none", handler: web.highlightLanguage },
    { method: "get", path: "/web/vendor/highlight/styles/*file", body: "none", handler: web.highlightStyle },
    { method: "get", path: "/web/*file", body: "none", handler: web.asset },
    { method: "get", path: "/health", body: "none", handler: ollama.health },
    { method: "get", path: "/ready", body: "none", handler: ollama.ready },
    { method: "get", path: "/metrics", body: "none", handler: ollama.metrics },
    { method: "get", path: "/api/version", body: "none", handler: ollama.version },
    { method: "get", path: WS_PATH, body: "none", handler: upgradeRequired },

    { method: "post", path: "/api/generate", body: "json", handler: ollama.generate },
    { method: "post", path: "/api/chat", body: "json", handler: ollama.chat },
    { method: "post", path: "/api/embed", body: "json", handler: ollama.embed },
    { method: "post", path: "/api/embeddings", body: "json", handler: ollama.embeddings },
    { method: "post", path: "/api/tokenize", body: "json", handler: ollama.tokenize },
    { method: "post", path: "/api/detokenize", body: "json", handler: ollama.detokenize },

    { method: "get", path: "/api/tags", body: "none", handler: ollama.tags },
    { method: "get", path: "/api/ps", body: "none", handler: ollama.ps },
    { method: "post", path: "/api/show", body: "json", handler: ollama.show },
    { method: "post", path: "/api/pull", body: "json", handler: ollama.pull },
    { method: "post", path: "/api/push", body: "json", handler: ollama.push },
    { method: "post", path: "/api/create", body: "json", handler: ollama.create },
    { method: "post", path: "/api/copy", body: "json", handler: ollama.copy },
    { method: "delete", path: "/api/delete", body: "json", handler: ollama.delete },
    { method: "head", path: "/api/blobs/:digest", body: "none", handler: ollama.hasBlob },
    { method: "post", path: "/api/blobs/:digest", body: "stream", handler: ollama.writeBlob },

    { method: "post", path: "/v1/chat/completions", body: "json", handler: openai.chatCompletions },
    { method: "post", path: "/v1/completions", body: "json", handler: openai.completions },
    { method: "post", path: "/v1/embeddings", body: "json", handler: openai.embeddings },
    { method: "get", path: "/v1/models", body: "none", handler: openai.listModels },
    { method: "get", path: "/v1/models/*model", body: "none", handler: openai.getModel },

    { method: "post", path: "/v1/responses", body: "json", handler: responses.create },

    { method: "post", path: "/v1/messages", body: "json", handler: anthropic.messages },
    { method: "post", path: "/v1/messages/count_tokens", body: "json", handler: anthropic.countTokens },
    { method: "get", path: "/v1/metrics", body: "none", handler: metrics.metrics },
    { method: "all", path: "/v1/metrics", body: "none", handler: metrics.readOnly },
  ];
}
