// The JSON view of the engine's metrics (`/v1/metrics`, the dashboard): the counters of
// `renderPrometheus`, plus the last minute's rates and latency percentiles, and the process memory.
import type { MetricsSnapshot, ModelMetrics } from "../api/metrics.js";
import type { ModelMetricsView } from "./metrics.js";

export interface LoadedModelMetrics extends ModelMetricsView {
  /** Size of the model's weights file. */
  sizeBytes: number;
}

function modelMetrics(m: LoadedModelMetrics): ModelMetrics {
  const recent = m.metrics.recent.figures();
  return {
    name: m.name,
    window_seconds: recent.windowSeconds,
    requests: {
      running: m.running,
      waiting: m.waiting,
      per_second: recent.requestsPerSecond,
      finished: Object.fromEntries(m.metrics.finished),
    },
    tokens: {
      prompt_total: m.metrics.promptTokens,
      generation_total: m.metrics.generationTokens,
      prompt_per_second: recent.promptTokensPerSecond,
      generation_per_second: recent.generationTokensPerSecond,
      generation_per_second_series: recent.generationTokensSeries,
    },
    latency: { ttft_seconds: recent.ttftSeconds, inter_token_seconds: recent.itlSeconds },
    cache: {
      kv_cells_used: m.kv.usedCells,
      kv_cells_total: m.kv.kvCells,
      kv_cells_idle: m.kv.idleCells,
      prefix_cache_queries: m.kv.prefixQueries,
      prefix_cache_hits: m.kv.prefixHits,
      prefix_cache_hit_rate: m.kv.prefixQueries > 0 ? m.kv.prefixHits / m.kv.prefixQueries : 0,
      preemptions: m.metrics.preemptions,
    },
    memory: { model_bytes: m.sizeBytes },
  };
}

export function metricsSnapshot(models: LoadedModelMetrics[]): MetricsSnapshot {
  const usage = process.memoryUsage();
  return {
    time: new Date().toISOString(),
    memory: {
      rss_bytes: usage.rss,
      peak_rss_bytes: Math.max(usage.rss, process.resourceUsage().maxRSS * 1024),
      external_bytes: usage.external,
    },
    models: models.map(modelMetrics),
  };
}
