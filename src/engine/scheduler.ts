// The scheduler decides. Each step it returns a plain StepPlan: which tokens of which sequences
// to run, and what must change before they run (cache operations, samplers to drop and to
// install). There is no prefill phase and no decode phase: a sequence simply has tokens that are
// not yet in the KV cache (a whole prompt, a chunk of it, or the one token just sampled).
import { BusyError } from "../api/errors.js";
import type { SamplerParams } from "../native/index.js";
import { wholeBlocksWithin, type CacheOp, type KvLease, type KvManager } from "./kv-manager.js";
import { fitToMedia, isMediaPlaceholder, type MediaSpan } from "./media.js";

export interface ScheduledSequence {
  readonly id: number;
  /** Prompt followed by the tokens generated so far. */
  tokens: number[];
  readonly promptLength: number;
  readonly sampler: SamplerParams;
  /** Tokens of `tokens` whose cells are in the KV cache. */
  numComputed: number;
  lease: KvLease | undefined;
  /** Times this sequence was preempted (reported in metrics). */
  numPreemptions: number;
  /** Finished or cancelled: it leaves at the next step boundary and no longer counts as load. */
  readonly finished: boolean;
  /** The prompt's images: their rows hold placeholder tokens (media.ts). */
  readonly media?: readonly MediaSpan[];
  /** Shared with the other choices of its request: they share blocks even with the prefix cache off. */
  readonly promptGroup?: object;
}

export interface PlanEntry<S extends ScheduledSequence> {
  seq: S;
  start: number;
  count: number;
  /** The entry reaches the end of the sequence's tokens: sample its next token. */
  sample: boolean;
}

/** Tokens decoded together: a whole StepPlan, or a part of one the executor runs on its own. */
export interface Batch<S extends ScheduledSequence> {
  entries: PlanEntry<S>[];
  numTokens: number;
}

/** A sequence that starts running (again) in this step: what its new sampler needs. */
export interface Admission<S extends ScheduledSequence> {
  seq: S;
  seqId: number;
  sampler: SamplerParams;
  /** The prompt: it starts the sampler's repeat-penalty window. */
  promptTokens: Int32Array;
  /** Tokens generated before a preemption: replayed into the penalty window and the grammar. */
  generatedTokens: Int32Array;
}

export interface StepPlan<S extends ScheduledSequence> extends Batch<S> {
  /** Entries of one token (a decode, or a prompt's last token): outside the chunk budget. */
  numSingleRows: number;
  /**
   * KV cache operations decided since the last plan (releases at step boundaries, duplicate
   * prefills of the last step, evictions and prefix attachments while planning), in order:
   * applied before anything else of the plan.
   */
  cacheOps: readonly CacheOp[];
  /** Sequence ids whose sampler goes (finished, cancelled or preempted): dropped before admissions. */
  releasedSeqIds: number[];
  admissions: Admission<S>[];
  /** Sequences preempted while planning (their cells freed; they wait to be recomputed). */
  preempted: S[];
}

export interface SchedulerLimits {
  /** Most sequences running at once. */
  parallel: number;
  /**
   * Most prompt tokens in one step (chunked prefill). Each running sequence's one decode token
   * comes on top, so a step holds at most batchSize + parallel tokens: a burst of prompts
   * then never waits for the decode tokens of the sequences it started.
   */
  batchSize: number;
  /** Most sequences waiting beyond the running ones; more is a BusyError. */
  maxWaiting: number;
}

export class Scheduler<S extends ScheduledSequence> {
  readonly running: S[] = [];
  readonly waiting: S[] = [];
  /** Sequence ids released since the last plan. */
  private releasedSeqIds: number[] = [];

  constructor(
    private readonly kv: KvManager,
    private readonly limits: SchedulerLimits,
  ) {}

  get hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0;
  }

  /** Whether the next sequence would be refused: `maxWaiting` wait beyond the free running places. */
  get full(): boolean {
    const active = (list: S[]) => list.filter((s) => !s.finished).length;
    const freePlaces = Math.max(0, this.limits.parallel - active(this.running));
    return active(this.waiting) >= this.limits.maxWaiting + freePlaces;
  }

  /** Queues a sequence; a BusyError when the queue is `full`. */
  add(seq: S): void {
    if (this.full) throw new BusyError();
    this.waiting.push(seq);
  }

  /** Removes a sequence wherever it is and frees its cells (finished or cancelled). */
  remove(seq: S): void {
    const w = this.waiting.indexOf(seq);
    if (w >= 0) this.waiting.splice(w, 1);
    const r = this.running.indexOf(seq);
    if (r >= 0) this.running.splice(r, 1);
    this.closeLease(seq);
  }

  schedule(): StepPlan<S> {
    const plan: StepPlan<S> = {
      entries: [], numTokens: 0, numSingleRows: 0, cacheOps: [], releasedSeqIds: [], admissions: [], preempted: [],
    };
    this.trimIdleCache();
    this.scheduleRunning(plan);
    this.scheduleWaiting(plan);
    plan.cacheOps = this.kv.takeCacheOps();
    plan.releasedSeqIds = this.releasedSeqIds;
    this.releasedSeqIds = [];
    return plan;
  }

  /** After a batch ran: its tokens are in the cache; full blocks become shareable. */
  complete(batch: Batch<S>): void {
    this.kv.advance(batch.numTokens);
    for (const e of batch.entries) {
      e.seq.numComputed += e.count;
      if (e.seq.lease) this.kv.commit(e.seq.lease, e.seq.tokens);
    }
  }

  /** A batch did not run (no room, a failed step, or an earlier batch of its plan stopped it). */
  undo(batch: Batch<S>): void {
    for (const e of batch.entries) if (e.seq.lease) this.kv.shrink(e.seq.lease, e.count);
  }

  /**
   * A sequence's admission failed (its sampler was refused): its entry leaves the plan before
   * any batch runs, and the sequence leaves the scheduler.
   */
  withdraw(plan: StepPlan<S>, seq: S): void {
    dropEntry(plan, seq);
    this.remove(seq);
  }

  /**
   * A batch found no room in the KV cache (llama.cpp's own placement disagreed with the
   * accounting; the batches that did not run were undone): drop the prefix cache and preempt
   * the newest running sequence.
   */
  preemptForNoRoom(): void {
    this.kv.evictAll();
    const victim = this.running[this.running.length - 1];
    if (victim && this.running.length > 1) this.preempt(victim);
  }

  /**
   * Idle cached prefixes may use the share of the cache that belongs to the sequence places
   * nobody will take soon (as a free llama-server slot keeps its last prompt): at full load
   * every cell serves running work, and no step pays for visiting idle cells. What the next
   * waiting prompts would reuse stays.
   */
  private trimIdleCache(): void {
    const freePlaces = Math.max(0, this.limits.parallel - this.running.length);
    const upcoming = this.waiting.slice(0, freePlaces);
    const idlePlaces = freePlaces - upcoming.length;
    this.kv.trimIdle(Math.floor((this.kv.kvCells * idlePlaces) / this.limits.parallel), upcoming);
  }

  // Running sequences first, oldest first: each gets its pending tokens (1 when decoding). One
  // with none waits for its token from a deferred grammar pick (step-loop.ts): it holds its
  // place and cells, and may be preempted (it then samples again when it runs again).
  private scheduleRunning(plan: StepPlan<S>): void {
    for (let i = 0; i < this.running.length; i++) {
      const seq = this.running[i];
      const pending = seq.tokens.length - seq.numComputed;
      const count = pending === 1 ? 1 : fitToMedia(seq.media, seq.numComputed, Math.min(pending, this.promptTokensLeft(plan)));
      if (count <= 0) continue;
      if (!this.makeRoom(count, seq, plan)) {
        // Not even preempting newer sequences freed enough: this one waits (recomputed later).
        this.preempt(seq, plan);
        i--;
        continue;
      }
      this.takeImageAfter(plan, this.addEntry(plan, seq, count));
    }
  }

  // Then waiting sequences, in arrival order, while sequence slots, budget and cells last.
  private scheduleWaiting(plan: StepPlan<S>): void {
    while (this.waiting.length > 0 && this.running.length < this.limits.parallel) {
      const budget = this.promptTokensLeft(plan);
      if (budget <= 0) break;
      const seq = this.waiting[0];
      const cached = this.kv.matchLength(seq);
      if (this.sharesPrefillInFlight(seq, cached)) break;
      const count = fitToMedia(seq.media, cached, Math.min(seq.tokens.length - cached, budget));
      // An image's rows that do not fit this step's budget wait for a step with room for them.
      if (count === 0) break;
      if (!this.kv.evict(this.cellsToProgress(seq, cached), seq)) break;
      const lease = this.kv.open(seq);
      if (!lease) break;
      this.waiting.shift();
      seq.lease = lease;
      seq.numComputed = lease.cells;
      this.running.push(seq);
      plan.admissions.push(admission(seq, lease.seqId));
      // Taking a sequence id may have evicted part of the cached prefix it matched: count from what it got.
      const taken = fitToMedia(seq.media, seq.numComputed, Math.min(seq.tokens.length - seq.numComputed, budget));
      if (taken > 0) this.takeImageAfter(plan, this.addEntry(plan, seq, taken));
    }
  }

  /**
   * A waiting prompt that shares a not-yet-cached block with a prompt being prefilled right now
   * waits: once that prefill's blocks are cached it attaches to them instead of computing the
   * same prefix again (a burst of requests with one system prompt computes it once; the choices
   * of one request compute their prompt once, with the prefix cache off too).
   */
  private sharesPrefillInFlight(seq: S, cached: number): boolean {
    return this.running.some((r) => {
      if (!this.kv.shareBlocks(r.promptGroup, seq.promptGroup)) return false;
      const shareable = wholeBlocksWithin(seq.media, commonPrefix(r.tokens, seq.tokens, seq.tokens.length - 1));
      return shareable > cached && r.numComputed < shareable;
    });
  }

  /**
   * Cells a waiting sequence needs free before it starts, those it takes until it samples its
   * next token: its tokens not cached, and a decode token per running sequence for each step its
   * prompt takes. Admitted when its first chunk fit (before 2026-12-02), a preempted sequence came
   * back at once and was preempted again before it sampled anything: 8 stories260K sequences
   * growing to 1,024 tokens in 1,024 cells were preempted 352 times and computed 75,913 tokens
   * for 8,145 generated; admitted whole, 19 times and 13,699 tokens.
   */
  private cellsToProgress(seq: S, cached: number): number {
    const pending = seq.tokens.length - cached;
    return pending + this.running.length * Math.ceil(pending / this.limits.batchSize);
  }

  private promptTokensLeft(plan: StepPlan<S>): number {
    return this.limits.batchSize - (plan.numTokens - plan.numSingleRows);
  }

  private addEntry(plan: StepPlan<S>, seq: S, count: number, start = seq.numComputed): PlanEntry<S> {
    this.kv.grow(seq.lease!, count);
    const entry = { seq, start, count, sample: start + count === seq.tokens.length };
    plan.entries.push(entry);
    plan.numTokens += count;
    if (count === 1) plan.numSingleRows++;
    return entry;
  }

  /**
   * Text that stopped where an image starts takes the image's rows into the same step when they
   * fit the budget and free cells: the executor decodes a step's images after its tokens, so the
   * rows still see the text. (Text after an image waits a step: it must see the rows.) A request
   * of 7 tokens of text before a 256-row image spent a step of its own on the 7 tokens, 90-130 ms
   * on 2 cores while every request of a burst on that image waited for it (2026-12-02).
   */
  private takeImageAfter(plan: StepPlan<S>, text: PlanEntry<S>): void {
    const { seq } = text;
    const start = text.start + text.count;
    if (isMediaPlaceholder(seq.tokens[text.start]!) || !isMediaPlaceholder(seq.tokens[start] ?? 0)) return;
    const rows = fitToMedia(seq.media, start, Math.min(seq.tokens.length - start, this.promptTokensLeft(plan)));
    if (rows > 0 && this.kv.evict(rows)) this.addEntry(plan, seq, rows, start);
  }

  /** Frees cells for `count` tokens: cached prefixes first, then the newest running sequences. */
  private makeRoom(count: number, seq: S, plan: StepPlan<S>): boolean {
    while (!this.kv.evict(count)) {
      const victim = this.running[this.running.length - 1];
      if (victim === seq) return false;
      this.preempt(victim, plan);
    }
    return true;
  }

  private preempt(seq: S, plan?: StepPlan<S>): void {
    if (plan) {
      dropEntry(plan, seq);
      plan.preempted.push(seq);
    }
    this.running.splice(this.running.indexOf(seq), 1);
    this.closeLease(seq);
    seq.numComputed = 0;
    seq.numPreemptions++;
    // First in line again: it resumes by recomputing its prompt and what it generated.
    this.waiting.unshift(seq);
  }

  // Its cells are freed (the cache operations ride in the next plan) and its sampler goes.
  private closeLease(seq: S): void {
    if (!seq.lease) return;
    this.kv.close(seq.lease);
    this.releasedSeqIds.push(seq.lease.seqId);
    seq.lease = undefined;
  }
}

// Its entries (text, and an image after it) leave the plan; their cells stay counted in its lease until the lease closes.
function dropEntry<S extends ScheduledSequence>(plan: StepPlan<S>, seq: S): void {
  for (const { count } of plan.entries.filter((e) => e.seq === seq)) {
    plan.numTokens -= count;
    if (count === 1) plan.numSingleRows--;
  }
  plan.entries = plan.entries.filter((e) => e.seq !== seq);
}

function admission<S extends ScheduledSequence>(seq: S, seqId: number): Admission<S> {
  return {
    seq,
    seqId,
    sampler: seq.sampler,
    // An image's placeholders are no tokens: they stay out of the penalty window.
    promptTokens: Int32Array.from(seq.tokens.slice(0, seq.promptLength).filter((t) => !isMediaPlaceholder(t))),
    generatedTokens: Int32Array.from(seq.tokens.slice(seq.promptLength)),
  };
}

function commonPrefix(a: number[], b: number[], max: number): number {
  const n = Math.min(a.length, b.length, max);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
