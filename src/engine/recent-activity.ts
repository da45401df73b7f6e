// The last minute of one model's work, second by second: the rates and latency percentiles that
// `/v1/metrics` and the dashboard show. The Prometheus histograms count since load, and their 15
// buckets are too coarse for percentiles (a p95 inter-token latency somewhere in 10-20 ms).

export const WINDOW_SECONDS = 60;

// Latencies go into log-spaced bins 10% wide from 0.1 ms up, so a percentile read from a bin is
// within 5% of the true value; a minute of a busy model (a GPU at 6,000 tokens/s) costs 60 x 2 x
// 170 counters instead of 360,000 samples.
const BIN_GROWTH = 1.1;
const FIRST_BIN_SECONDS = 1e-4;
const NUM_BINS = 170; // up to 0.1 ms x 1.1^170, about 11 hours

function binOf(seconds: number): number {
  if (!(seconds > FIRST_BIN_SECONDS)) return 0;
  return Math.min(NUM_BINS - 1, Math.ceil(Math.log(seconds / FIRST_BIN_SECONDS) / Math.log(BIN_GROWTH)));
}

/** A value within the bin: its geometric middle. */
function binValue(bin: number): number {
  return FIRST_BIN_SECONDS * BIN_GROWTH ** (bin - 0.5);
}

interface Second {
  /** Whole seconds since the epoch. */
  at: number;
  promptTokens: number;
  generationTokens: number;
  finishedRequests: number;
  ttft: Uint32Array;
  itl: Uint32Array;
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  /** Observations in the window (the percentiles are 0 when there are none). */
  count: number;
}

export interface RecentFigures {
  /** Seconds the figures cover: the window, or less when the model was loaded more recently. */
  windowSeconds: number;
  requestsPerSecond: number;
  promptTokensPerSecond: number;
  generationTokensPerSecond: number;
  /** Generated tokens in each of the last `WINDOW_SECONDS` seconds, oldest first, the current (partial) second last. */
  generationTokensSeries: number[];
  ttftSeconds: Percentiles;
  itlSeconds: Percentiles;
}

function percentiles(bins: Uint32Array): Percentiles {
  const count = bins.reduce((a, b) => a + b, 0);
  const at = (q: number) => {
    if (count === 0) return 0;
    const rank = Math.ceil(q * count);
    let seen = 0;
    for (let i = 0; i < bins.length; i++) {
      seen += bins[i]!;
      if (seen >= rank) return binValue(i);
    }
    return binValue(bins.length - 1);
  };
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), count };
}

export class RecentActivity {
  /** Ring of the last WINDOW_SECONDS seconds, indexed by `at % WINDOW_SECONDS`. */
  private readonly seconds: Array<Second | undefined> = new Array(WINDOW_SECONDS);
  private readonly startedAt: number;

  constructor(private readonly now: () => number = Date.now) {
    this.startedAt = now();
  }

  firstToken(promptTokens: number, ttftSeconds: number): void {
    const s = this.current();
    s.promptTokens += promptTokens;
    s.generationTokens++;
    s.ttft[binOf(ttftSeconds)]!++;
  }

  nextToken(itlSeconds: number): void {
    const s = this.current();
    s.generationTokens++;
    s.itl[binOf(itlSeconds)]!++;
  }

  requestFinished(): void {
    this.current().finishedRequests++;
  }

  figures(): RecentFigures {
    const nowMs = this.now();
    const nowSecond = Math.floor(nowMs / 1000);
    const inWindow = this.seconds.filter((s): s is Second => s !== undefined && s.at > nowSecond - WINDOW_SECONDS);
    const windowSeconds = Math.max(1e-3, Math.min(WINDOW_SECONDS, (nowMs - this.startedAt) / 1000));
    const sum = (pick: (s: Second) => number) => inWindow.reduce((total, s) => total + pick(s), 0);
    const merged = (pick: (s: Second) => Uint32Array) => {
      const bins = new Uint32Array(NUM_BINS);
      for (const s of inWindow) pick(s).forEach((n, i) => (bins[i] += n));
      return bins;
    };
    const series = Array.from({ length: WINDOW_SECONDS }, (_, i) => {
      const at = nowSecond - WINDOW_SECONDS + 1 + i;
      return inWindow.find((s) => s.at === at)?.generationTokens ?? 0;
    });
    return {
      windowSeconds,
      requestsPerSecond: sum((s) => s.finishedRequests) / windowSeconds,
      promptTokensPerSecond: sum((s) => s.promptTokens) / windowSeconds,
      generationTokensPerSecond: sum((s) => s.generationTokens) / windowSeconds,
      generationTokensSeries: series,
      ttftSeconds: percentiles(merged((s) => s.ttft)),
      itlSeconds: percentiles(merged((s) => s.itl)),
    };
  }

  private current(): Second {
    const at = Math.floor(this.now() / 1000);
    const slot = at % WINDOW_SECONDS;
    let s = this.seconds[slot];
    if (s?.at !== at) {
      s = { at, promptTokens: 0, generationTokens: 0, finishedRequests: 0, ttft: new Uint32Array(NUM_BINS), itl: new Uint32Array(NUM_BINS) };
      this.seconds[slot] = s;
    }
    return s;
  }
}
