// `GET /v1/metrics`: the engine's figures as JSON (the dashboard's feed) or, with
// `?format=prometheus`, as the Prometheus text of `/metrics`; `?category=cache,latency` keeps only
// those groups.
import type { RequestHandler } from "express";
import { z } from "zod";
import { BadRequestError, MethodNotAllowedError } from "../api/errors.js";
import { METRICS_CATEGORIES, type MetricsCategory, type MetricsSnapshot } from "../api/metrics.js";
import { parseRequest } from "../api/validate.js";
import type { ServerDeps } from "./context.js";

const MetricsQuerySchema = z.strictObject({
  format: z.enum(["json", "prometheus"]).optional(),
  category: z.string().optional(),
});

/** The category of each Prometheus family; families not listed appear only when no category is asked for. */
const PROMETHEUS_CATEGORIES: Record<string, MetricsCategory> = {
  "vllm:num_requests_running": "requests",
  "vllm:num_requests_waiting": "requests",
  "vllm:request_success_total": "requests",
  "vllm:prompt_tokens_total": "tokens",
  "vllm:generation_tokens_total": "tokens",
  "vllm:request_prompt_tokens": "tokens",
  "vllm:request_generation_tokens": "tokens",
  "vllm:time_to_first_token_seconds": "latency",
  "vllm:inter_token_latency_seconds": "latency",
  "vllm:e2e_request_latency_seconds": "latency",
  "vllm:kv_cache_usage_perc": "cache",
  "vllm:cache_config_info": "cache",
  "vllm:prefix_cache_queries_total": "cache",
  "vllm:prefix_cache_hits_total": "cache",
  "vllm:num_preemptions_total": "cache",
};

function parseCategories(list: string | undefined): Set<MetricsCategory> | undefined {
  if (list === undefined) return undefined;
  const names = list.split(",").map((c) => c.trim()).filter((c) => c !== "");
  const unknown = names.find((c) => !(METRICS_CATEGORIES as readonly string[]).includes(c));
  if (unknown !== undefined || names.length === 0) {
    throw new BadRequestError(`invalid category: ${JSON.stringify(unknown ?? list)}, expected a comma-separated list of ${METRICS_CATEGORIES.join(", ")}`);
  }
  return new Set(names as MetricsCategory[]);
}

function selectJson(snapshot: MetricsSnapshot, categories: Set<MetricsCategory>): MetricsSnapshot {
  const keep = <T extends object>(groups: T): Partial<T> =>
    Object.fromEntries(Object.entries(groups).filter(([key]) => categories.has(key as MetricsCategory))) as Partial<T>;
  return {
    time: snapshot.time,
    ...(categories.has("memory") ? { memory: snapshot.memory } : {}),
    models: snapshot.models.map(({ name, window_seconds, ...groups }) => ({ name, window_seconds, ...keep(groups) })),
  };
}

/** Keeps the families (a `# HELP` line, its `# TYPE` line and samples) of the chosen categories. */
function selectPrometheus(text: string, categories: Set<MetricsCategory>): string {
  const families = text.split(/^(?=# HELP )/m);
  const chosen = families.filter((family) => {
    const name = /^# HELP (\S+)/.exec(family)?.[1];
    const category = name === undefined ? undefined : PROMETHEUS_CATEGORIES[name];
    return category !== undefined && categories.has(category);
  });
  return chosen.join("");
}

export function metricsHandlers({ engine }: ServerDeps) {
  return {
    metrics: (req, res) => {
      const query = parseRequest(MetricsQuerySchema, req.query);
      const categories = parseCategories(query.category);
      if (query.format === "prometheus") {
        const text = engine.metrics();
        res.type("text/plain; version=0.0.4").send(categories ? selectPrometheus(text, categories) : text);
        return;
      }
      const snapshot = engine.metricsSnapshot();
      res.json(categories ? selectJson(snapshot, categories) : snapshot);
    },
    /** Metrics are read-only: other methods get 405 with the methods that work. */
    readOnly: (req, res) => {
      res.setHeader("Allow", "GET, HEAD");
      throw new MethodNotAllowedError(`${req.method} ${req.path} not allowed: use GET`);
    },
  } satisfies Record<string, RequestHandler>;
}
