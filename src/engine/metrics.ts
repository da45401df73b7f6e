// Counters and histograms of one model, exported with vLLM's metric names so that a cluster
// router that understands vLLM (the Gateway API Inference Extension) can route to vllama.
import { BLOCK_SIZE, type KvStats } from "./kv-manager.js";
import { RecentActivity } from "./recent-activity.js";
import type { Sequence } from "./sequence.js";

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const TOKEN_BUCKETS = [1, 8, 32, 128, 512, 1024, 2048, 4096, 8192, 16384];

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) this.counts[i]++;
  }
}

// A longer gap between two native steps is idle time (no work queued), not step overhead.
const IDLE_GAP_MS = 50;

/**
 * Totals over the native steps (executor batches) run so far: where step time goes. A reader
 * takes two snapshots and subtracts (bench/lib/step-profile.ts).
 */
export interface StepTotals {
  steps: number;
  /** Tokens decoded, and rows sampled. */
  tokens: number;
  rows: number;
  /** The addon's own timings: llama_decode (with the wait for the GPU), and sampling. */
  decodeNs: number;
  sampleNs: number;
  /** Wall time of the step calls, from building the batch to the result on the JS thread. */
  stepMs: number;
  /** Gaps from one step's end to the next one's start (scheduling, delivering tokens), idle gaps aside. */
  betweenStepsMs: number;
}

export class EngineMetrics {
  promptTokens = 0;
  generationTokens = 0;
  preemptions = 0;
  readonly finished = new Map<string, number>();
  readonly ttft = new Histogram(LATENCY_BUCKETS);
  readonly itl = new Histogram(LATENCY_BUCKETS);
  readonly e2e = new Histogram(LATENCY_BUCKETS);
  readonly promptLengths = new Histogram(TOKEN_BUCKETS);
  readonly generationLengths = new Histogram(TOKEN_BUCKETS);
  readonly steps: StepTotals = { steps: 0, tokens: 0, rows: 0, decodeNs: 0, sampleNs: 0, stepMs: 0, betweenStepsMs: 0 };
  readonly recent = new RecentActivity();
  private readonly lastTokenAt = new WeakMap<Sequence, bigint>();
  private lastStepEndMs = -Infinity;

  preempted(n: number): void {
    this.preemptions += n;
  }

  tokenGenerated(seq: Sequence): void {
    const now = process.hrtime.bigint();
    const last = this.lastTokenAt.get(seq);
    if (last === undefined) {
      this.promptTokens += seq.promptLength;
      this.promptLengths.observe(seq.promptLength);
      const ttft = Number(now - seq.queuedAt) / 1e9;
      this.ttft.observe(ttft);
      this.recent.firstToken(seq.promptLength, ttft);
    } else {
      const itl = Number(now - last) / 1e9;
      this.itl.observe(itl);
      this.recent.nextToken(itl);
    }
    this.lastTokenAt.set(seq, now);
    this.generationTokens++;
    if (seq.finished) {
      this.generationLengths.observe(seq.generatedCount);
      this.e2e.observe(Number(now - seq.queuedAt) / 1e9);
    }
  }

  /** One native step ran from `startMs` to `endMs` (performance.now()). */
  stepRan(startMs: number, endMs: number, tokens: number, rows: number, decodeNs: number, sampleNs: number): void {
    const s = this.steps;
    const gap = startMs - this.lastStepEndMs;
    if (gap < IDLE_GAP_MS) s.betweenStepsMs += gap;
    this.lastStepEndMs = endMs;
    s.steps++;
    s.tokens += tokens;
    s.rows += rows;
    s.decodeNs += decodeNs;
    s.sampleNs += sampleNs;
    s.stepMs += endMs - startMs;
  }

  requestFinished(reason: string): void {
    this.finished.set(reason, (this.finished.get(reason) ?? 0) + 1);
    this.recent.requestFinished();
  }
}

export interface ModelMetricsView {
  name: string;
  metrics: EngineMetrics;
  running: number;
  waiting: number;
  kv: KvStats;
}

/**
 * The share of the KV cache that running work holds, as vLLM counts it: cached prefix blocks
 * that no running sequence uses are free (evicted on demand), so an idle replica reads 0 and a
 * router's load signal falls back when requests end.
 */
export function kvCacheUsage(kv: KvStats): number {
  return kv.kvCells ? (kv.usedCells - kv.idleCells) / kv.kvCells : 0;
}

/** A label value in the text format: backslash, double quote and newline escaped. */
function labelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

/**
 * Prometheus text exposition (format 0.0.4) of every loaded model, labelled `model_name`: the
 * model-server protocol of the Gateway API Inference Extension (queue, running, KV usage 0-1,
 * cache config) plus vLLM's counters and histograms.
 */
export function renderPrometheus(models: ModelMetricsView[]): string {
  const out: string[] = [];
  const family = (name: string, type: string, help: string, lines: string[]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
  };
  const label = (m: ModelMetricsView, extra = "") => `{model_name="${labelValue(m.name)}"${extra}}`;
  const gauge = (name: string, help: string, value: (m: ModelMetricsView) => number, type = "gauge") =>
    family(name, type, help, models.map((m) => `${name}${label(m)} ${value(m)}`));
  const histogram = (name: string, help: string, pick: (m: EngineMetrics) => Histogram) =>
    family(name, "histogram", help, models.flatMap((m) => {
      const h = pick(m.metrics);
      return [
        ...h.buckets.map((b, i) => `${name}_bucket${label(m, `,le="${b}"`)} ${h.counts[i]}`),
        `${name}_bucket${label(m, ',le="+Inf"')} ${h.count}`,
        `${name}_sum${label(m)} ${h.sum}`,
        `${name}_count${label(m)} ${h.count}`,
      ];
    }));

  gauge("vllm:num_requests_running", "Requests generating now.", (m) => m.running);
  gauge("vllm:num_requests_waiting", "Requests waiting to run.", (m) => m.waiting);
  gauge("vllm:kv_cache_usage_perc", "Fraction of KV cache cells running requests hold (0..1; idle cached prefixes count as free).", (m) => kvCacheUsage(m.kv));
  const share = (m: ModelMetricsView, cells: number) => (m.kv.kvCells ? cells / m.kv.kvCells : 0);
  gauge("vllama:kv_cache_reclaimable_perc", "Fraction of KV cache cells held only by idle cached prefixes, taken back on demand (0..1).",
    (m) => share(m, m.kv.idleCells));
  family("vllm:cache_config_info", "gauge", "KV cache configuration.", models.map((m) =>
    `vllm:cache_config_info${label(m, `,block_size="${BLOCK_SIZE}",num_gpu_blocks="${Math.floor(m.kv.kvCells / BLOCK_SIZE)}"`)} 1`));
  gauge("vllm:prompt_tokens_total", "Prompt tokens processed.", (m) => m.metrics.promptTokens, "counter");
  gauge("vllm:generation_tokens_total", "Tokens generated.", (m) => m.metrics.generationTokens, "counter");
  gauge("vllm:num_preemptions_total", "Sequences preempted for KV cache room.", (m) => m.metrics.preemptions, "counter");
  gauge("vllm:prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.", (m) => m.kv.prefixQueries, "counter");
  gauge("vllm:prefix_cache_hits_total", "Prompt tokens found in the prefix cache.", (m) => m.kv.prefixHits, "counter");
  family("vllm:request_success_total", "counter", "Finished requests by reason.", models.flatMap((m) =>
    [...m.metrics.finished].map(([reason, n]) => `vllm:request_success_total${label(m, `,finished_reason="${reason}"`)} ${n}`)));
  histogram("vllm:time_to_first_token_seconds", "Time to first token.", (m) => m.ttft);
  histogram("vllm:inter_token_latency_seconds", "Time between tokens.", (m) => m.itl);
  histogram("vllm:e2e_request_latency_seconds", "Request latency.", (m) => m.e2e);
  histogram("vllm:request_prompt_tokens", "Prompt length.", (m) => m.promptLengths);
  histogram("vllm:request_generation_tokens", "Generated length.", (m) => m.generationLengths);
  return out.join("\n") + "\n";
}
