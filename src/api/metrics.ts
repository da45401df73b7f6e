// `GET /v1/metrics`: the figures of `/metrics` as JSON, per loaded model, grouped in categories
// that `?category=` selects. Rates and percentiles cover the last minute; totals count since load.

export const METRICS_CATEGORIES = ["requests", "tokens", "latency", "cache", "memory"] as const;
export type MetricsCategory = (typeof METRICS_CATEGORIES)[number];

export interface LatencyPercentiles {
  p50: number;
  p95: number;
  p99: number;
  /** Observations the percentiles come from. */
  count: number;
}

export interface ModelMetrics {
  name: string;
  /** Seconds the rates and percentiles cover: the last minute, or less for a model loaded more recently. */
  window_seconds: number;
  requests?: {
    running: number;
    waiting: number;
    per_second: number;
    /** Finished requests since load by reason: "stop", "length", "abort". */
    finished: Record<string, number>;
  };
  tokens?: {
    prompt_total: number;
    generation_total: number;
    prompt_per_second: number;
    generation_per_second: number;
    /** Generated tokens in each second of the last minute, oldest first (the last one is still running). */
    generation_per_second_series: number[];
  };
  latency?: {
    ttft_seconds: LatencyPercentiles;
    inter_token_seconds: LatencyPercentiles;
  };
  cache?: {
    kv_cells_used: number;
    kv_cells_total: number;
    /** Cells of cached prefix blocks that no running sequence uses. */
    kv_cells_idle: number;
    prefix_cache_queries: number;
    prefix_cache_hits: number;
    /** hits / queries since load (0 before any query). */
    prefix_cache_hit_rate: number;
    preemptions: number;
  };
  memory?: {
    /** Size of the model's weights file. */
    model_bytes: number;
  };
}

export interface MetricsSnapshot {
  /** ISO time of the snapshot. */
  time: string;
  memory?: {
    /** Resident memory of the server process now and at its peak (the OS's maximum RSS). */
    rss_bytes: number;
    peak_rss_bytes: number;
    /** Memory outside the JS heap that V8 is told of: the loaded models' weights (on any device) and buffers. */
    external_bytes: number;
  };
  models: ModelMetrics[];
}
