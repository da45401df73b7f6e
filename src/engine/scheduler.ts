// The scheduler decides. Each step it returns a plain StepPlan: which tokens of which sequences
// to run. There is no prefill phase and no decode phase: a sequence simply has tokens that are
// not yet in the KV cache (a whole prompt, a chunk of it, or the one token just sampled).
import { BusyError } from "../api/errors.js";
import { BLOCK_SIZE, type KvLease, type KvManager } from "./kv-manager.js";

export interface ScheduledSequence {
  readonly id: number;
  /** Prompt followed by the tokens generated so far. */
  tokens: number[];
  /** Tokens of `tokens` whose cells are in the KV cache. */
  numComputed: number;
  lease: KvLease | undefined;
  /** Times this sequence was preempted (reported in metrics). */
  numPreemptions: number;
  /** Finished or cancelled: it leaves at the next step boundary and no longer counts as load. */
  readonly finished: boolean;
}

export interface PlanEntry {
  seq: ScheduledSequence;
  start: number;
  count: number;
  /** The entry reaches the end of the sequence's tokens: sample its next token. */
  sample: boolean;
}

/** Tokens decoded together: a whole StepPlan, or a part of one the executor runs on its own. */
export interface Batch {
  entries: PlanEntry[];
  numTokens: number;
}

export interface StepPlan extends Batch {
  /** Entries of one token (a decode, or a prompt's last token): outside the chunk budget. */
  numSingleRows: number;
  /** Sequences preempted while planning (their cells freed; they wait to be recomputed). */
  preempted: ScheduledSequence[];
  /** Sequences that start running in this step (with a new sequence id: set their sampler). */
  admitted: ScheduledSequence[];
}

export interface SchedulerLimits {
  /** Most sequences running at once. */
  maxRunning: number;
  /**
   * Most prompt tokens in one step (chunked prefill). Each running sequence's one decode token
   * comes on top, so a step holds at most chunkBudget + maxRunning tokens: a burst of prompts
   * then never waits for the decode tokens of the sequences it started.
   */
  chunkBudget: number;
  /** Most sequences waiting beyond the running ones; more is a BusyError. */
  maxWaiting: number;
}

export class Scheduler {
  readonly running: ScheduledSequence[] = [];
  readonly waiting: ScheduledSequence[] = [];

  constructor(
    private readonly kv: KvManager,
    private readonly limits: SchedulerLimits,
  ) {}

  get hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0;
  }

  /** Queues a sequence; more than `maxWaiting` beyond the free running places is a BusyError. */
  add(seq: ScheduledSequence): void {
    const active = (list: ScheduledSequence[]) => list.filter((s) => !s.finished).length;
    const freePlaces = Math.max(0, this.limits.maxRunning - active(this.running));
    if (active(this.waiting) >= this.limits.maxWaiting + freePlaces) throw new BusyError();
    this.waiting.push(seq);
  }

  /** Removes a sequence wherever it is and frees its cells (finished or cancelled). */
  remove(seq: ScheduledSequence): void {
    const w = this.waiting.indexOf(seq);
    if (w >= 0) this.waiting.splice(w, 1);
    const r = this.running.indexOf(seq);
    if (r >= 0) this.running.splice(r, 1);
    if (seq.lease) this.kv.close(seq.lease);
    seq.lease = undefined;
  }

  schedule(): StepPlan {
    const plan: StepPlan = { entries: [], numTokens: 0, numSingleRows: 0, preempted: [], admitted: [] };
    this.trimIdleCache();
    this.scheduleRunning(plan);
    this.scheduleWaiting(plan);
    return plan;
  }

  /** After a batch ran: its tokens are in the cache; full blocks become shareable. */
  complete(batch: Batch): void {
    this.kv.advance(batch.numTokens);
    for (const e of batch.entries) {
      e.seq.numComputed += e.count;
      if (e.seq.lease) this.kv.commit(e.seq.lease, e.seq.tokens);
    }
  }

  /**
   * A batch found no room in the KV cache (llama.cpp's own placement disagreed with the
   * accounting). Undo its allocations and preempt the newest running sequence.
   */
  rejectForNoRoom(batch: Batch): void {
    for (const e of batch.entries) if (e.seq.lease) this.kv.shrink(e.seq.lease, e.count);
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
    const freePlaces = Math.max(0, this.limits.maxRunning - this.running.length);
    const upcoming = this.waiting.slice(0, freePlaces).map((s) => s.tokens);
    const idlePlaces = freePlaces - upcoming.length;
    this.kv.trimIdle(Math.floor((this.kv.totalCells * idlePlaces) / this.limits.maxRunning), upcoming);
  }

  // Running sequences first, oldest first: each gets its pending tokens (1 when decoding).
  private scheduleRunning(plan: StepPlan): void {
    for (let i = 0; i < this.running.length; i++) {
      const seq = this.running[i];
      const pending = seq.tokens.length - seq.numComputed;
      const count = pending === 1 ? 1 : Math.min(pending, this.chunkBudgetLeft(plan));
      if (count <= 0) continue;
      if (!this.makeRoom(count, seq, plan)) {
        // Not even preempting newer sequences freed enough: this one waits (recomputed later).
        this.preempt(seq, plan);
        i--;
        continue;
      }
      this.addEntry(plan, seq, count);
    }
  }

  // Then waiting sequences, in arrival order, while sequence slots, budget and cells last.
  private scheduleWaiting(plan: StepPlan): void {
    while (this.waiting.length > 0 && this.running.length < this.limits.maxRunning) {
      const budget = this.chunkBudgetLeft(plan);
      if (budget <= 0) break;
      const seq = this.waiting[0];
      const cached = this.kv.matchLength(seq.tokens);
      if (this.sharesPrefillInFlight(seq, cached)) break;
      const count = Math.min(seq.tokens.length - cached, budget);
      // Admit only what fits next to the running sequences' next decode tokens.
      if (!this.kv.evict(count + this.running.length)) break;
      const lease = this.kv.open(seq.tokens);
      if (!lease) break;
      this.waiting.shift();
      seq.lease = lease;
      seq.numComputed = lease.cells;
      this.running.push(seq);
      plan.admitted.push(seq);
      this.addEntry(plan, seq, Math.min(seq.tokens.length - seq.numComputed, budget));
    }
  }

  /**
   * A waiting prompt that shares a not-yet-cached block with a prompt being prefilled right now
   * waits: once that prefill's blocks are cached it attaches to them instead of computing the
   * same prefix again (a burst of requests with one system prompt computes it once).
   */
  private sharesPrefillInFlight(seq: ScheduledSequence, cached: number): boolean {
    if (!this.kv.prefixCaching) return false;
    return this.running.some((r) => {
      const shareable = Math.floor(commonPrefix(r.tokens, seq.tokens, seq.tokens.length - 1) / BLOCK_SIZE) * BLOCK_SIZE;
      return shareable > cached && r.numComputed < shareable;
    });
  }

  private chunkBudgetLeft(plan: StepPlan): number {
    return this.limits.chunkBudget - (plan.numTokens - plan.numSingleRows);
  }

  private addEntry(plan: StepPlan, seq: ScheduledSequence, count: number): void {
    this.kv.grow(seq.lease!, count);
    const start = seq.numComputed;
    plan.entries.push({ seq, start, count, sample: start + count === seq.tokens.length });
    plan.numTokens += count;
    if (count === 1) plan.numSingleRows++;
  }

  /** Frees cells for `count` tokens: cached prefixes first, then the newest running sequences. */
  private makeRoom(count: number, seq: ScheduledSequence, plan: StepPlan): boolean {
    while (!this.kv.evict(count)) {
      const victim = this.running[this.running.length - 1];
      if (victim === seq) return false;
      this.preempt(victim, plan);
    }
    return true;
  }

  private preempt(seq: ScheduledSequence, plan?: StepPlan): void {
    if (plan) {
      const planned = plan.entries.findIndex((e) => e.seq === seq);
      if (planned >= 0) {
        const { count } = plan.entries[planned];
        plan.numTokens -= count;
        if (count === 1) plan.numSingleRows--;
        plan.entries.splice(planned, 1);
      }
      plan.preempted.push(seq);
      const admitted = plan.admitted.indexOf(seq);
      if (admitted >= 0) plan.admitted.splice(admitted, 1);
    }
    this.running.splice(this.running.indexOf(seq), 1);
    if (seq.lease) this.kv.close(seq.lease);
    seq.lease = undefined;
    seq.numComputed = 0;
    seq.numPreemptions++;
    // First in line again: it resumes by recomputing its prompt and what it generated.
    this.waiting.unshift(seq);
  }
}

function commonPrefix(a: number[], b: number[], max: number): number {
  const n = Math.min(a.length, b.length, max);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
