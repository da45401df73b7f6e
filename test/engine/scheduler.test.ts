// The scheduler and KV manager, and the executor's batching, without the addon: the decisions,
// with the plans' cache operations applied to a fake cache.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BusyError } from "../../src/api/errors.js";
import { BLOCK_SIZE, idleBlockTokens, KvManager, type CacheOp } from "../../src/engine/kv-manager.js";
import { Executor } from "../../src/engine/executor.js";
import { Scheduler, type ScheduledSequence, type StepPlan } from "../../src/engine/scheduler.js";
import { FakeContext, SAMPLER } from "../helpers/fake-context.js";

/** Applies cache operations and tracks which positions each sequence holds, like llama.cpp would. */
class FakeKv {
  readonly ops: string[] = [];
  readonly cells = new Map<number, Set<number>>(); // seqId -> positions
  applyOps(ops: readonly CacheOp[]): void {
    for (const op of ops) {
      if (op.kind === "remove") this.remove(op.seqId, op.p0, op.p1);
      else this.copy(op.src, op.dst, op.p0, op.p1);
    }
  }
  /** What a step does to the cache: its cache operations first, then the planned positions exist. */
  apply(plan: StepPlan<ScheduledSequence>): void {
    this.applyOps(plan.cacheOps);
    for (const e of plan.entries) {
      const set = this.cells.get(e.seq.lease!.seqId) ?? new Set<number>();
      for (let p = e.start; p < e.start + e.count; p++) set.add(p);
      this.cells.set(e.seq.lease!.seqId, set);
    }
  }
  private remove(seqId: number, p0: number, p1: number): void {
    this.ops.push(`rm ${seqId} ${p0} ${p1}`);
    const set = this.cells.get(seqId);
    if (set) for (const p of [...set]) if ((p0 < 0 || p >= p0) && (p1 < 0 || p < p1)) set.delete(p);
  }
  private copy(src: number, dst: number, p0: number, p1: number): void {
    this.ops.push(`cp ${src} ${dst} ${p0} ${p1}`);
    const from = this.cells.get(src) ?? new Set();
    const to = this.cells.get(dst) ?? new Set<number>();
    for (const p of from) if (p >= p0 && (p1 < 0 || p < p1)) to.add(p);
    this.cells.set(dst, to);
  }
}

let ids = 0;
function seq(tokens: number[]): ScheduledSequence {
  return {
    id: ++ids, tokens: [...tokens], promptLength: tokens.length, sampler: SAMPLER, numComputed: 0, lease: undefined, numPreemptions: 0, finished: false,
  };
}
const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

const IDLE_TOKENS = 8192;

function setup(cells: number, limits: Partial<{ parallel: number; batchSize: number; maxWaiting: number }> = {}, prefix = true) {
  const kv = new FakeKv();
  const manager = new KvManager(cells, 64, prefix, IDLE_TOKENS);
  const scheduler = new Scheduler<ScheduledSequence>(manager, { parallel: 8, batchSize: 64, maxWaiting: 16, ...limits });
  /** One step: plan, "run" it, complete it, and give every sampled sequence a new token. */
  const step = () => {
    const plan = scheduler.schedule();
    kv.apply(plan);
    scheduler.complete(plan);
    for (const e of plan.entries) if (e.sample) e.seq.tokens.push(7);
    return plan;
  };
  return { kv, manager, scheduler, step };
}

describe("scheduler", () => {
  test("decode tokens of running sequences come first, then prompt chunks within the chunk budget", () => {
    const { scheduler, step } = setup(1024, { batchSize: 64 });
    const a = seq(range(10));
    scheduler.add(a);
    let plan = step();
    assert.deepEqual(plan.entries.map((e) => [e.seq.id, e.start, e.count, e.sample]), [[a.id, 0, 10, true]]);
    const long = seq(range(150, 100));
    scheduler.add(long);
    plan = step();
    // a decodes one token, on top of the budget; the long prompt gets all of it (chunked prefill).
    assert.deepEqual(plan.entries.map((e) => [e.seq.id, e.count, e.sample]), [[a.id, 1, true], [long.id, 64, false]]);
    assert.equal(plan.numTokens, 65);
    plan = step();
    assert.deepEqual(plan.entries.map((e) => [e.seq.id, e.count, e.sample]), [[a.id, 1, true], [long.id, 64, false]]);
    plan = step();
    assert.deepEqual(plan.entries.map((e) => [e.seq.id, e.count, e.sample]), [[a.id, 1, true], [long.id, 22, true]]);
    assert.equal(long.numComputed, 150);
  });

  test("a burst of prompts is not slowed by the decode tokens of the prompts it started", () => {
    const { scheduler, step } = setup(4096, { parallel: 8, batchSize: 64 });
    const prompts = Array.from({ length: 8 }, (_, i) => seq(range(16, 1000 * (i + 1))));
    for (const p of prompts) scheduler.add(p);
    assert.equal(step().numTokens, 64);
    const second = step();
    // 4 decode tokens on top of a full chunk budget: the other 4 prompts all start now.
    assert.deepEqual(second.entries.map((e) => e.count), [1, 1, 1, 1, 16, 16, 16, 16]);
    assert.equal(second.numTokens, 64 + 4);
    assert.equal(scheduler.running.length, 8);
    assert.ok(prompts.slice(4).every((p) => p.numComputed === 16), "the later prompts are prefilled whole");
  });

  test("parallel caps running sequences; the queue beyond maxWaiting is a BusyError", () => {
    const { scheduler, step } = setup(4096, { parallel: 2, maxWaiting: 3 });
    for (let i = 0; i < 5; i++) scheduler.add(seq(range(4, i * 100)));
    assert.throws(() => scheduler.add(seq([1])), BusyError);
    step();
    assert.equal(scheduler.running.length, 2);
    assert.equal(scheduler.waiting.length, 3);
  });

  test("a finished sequence frees its cells; admission waits for room", () => {
    const { scheduler, manager, step } = setup(64, { batchSize: 64 }, false);
    const a = seq(range(40));
    const b = seq(range(40, 100));
    scheduler.add(a);
    scheduler.add(b);
    step();
    assert.deepEqual(scheduler.running, [a]); // b does not fit next to a
    assert.equal(manager.freeCells, 24);
    scheduler.remove(a);
    assert.equal(manager.freeCells, 64);
    step();
    assert.deepEqual(scheduler.running, [b]);
  });

  test("when cells run out mid-generation the newest sequence is preempted and resumes later", () => {
    const { scheduler, manager, step } = setup(48, { batchSize: 64 }, false);
    const a = seq(range(20));
    const b = seq(range(20, 100));
    scheduler.add(a);
    scheduler.add(b);
    step(); // both prefilled: 40 cells
    for (let i = 0; i < 4; i++) step(); // 8 more cells: the cache is full
    assert.equal(manager.freeCells, 0);
    const plan = step();
    assert.deepEqual(plan.preempted, [b]);
    assert.equal(b.numPreemptions, 1);
    assert.deepEqual(scheduler.waiting, [b]);
    assert.equal(b.tokens.length, 25); // it keeps what it generated and recomputes it later
    scheduler.remove(a);
    const resumed = step();
    assert.deepEqual(resumed.entries.map((e) => [e.seq.id, e.start, e.count, e.sample]), [[b.id, 0, 25, true]]);
  });

  test("a preempted sequence waits until its whole recompute fits instead of being preempted again and again", () => {
    // Chunks of 8: a chunk of the preempted sequence fits long before all of it does. Admitted on
    // a chunk (as before 2026-12-02) it was preempted again every other step: 11 times here.
    const { scheduler, step } = setup(48, { batchSize: 8 }, false);
    const a = seq(range(20));
    const b = seq(range(20, 100));
    scheduler.add(a);
    scheduler.add(b);
    let preempted = 0;
    while (preempted === 0) preempted = step().preempted.length;
    assert.deepEqual(scheduler.waiting, [b]);
    // a grows into the cells b left: b needs its 24 tokens and a's decode tokens meanwhile.
    while (a.tokens.length < 40) {
      const plan = step();
      assert.deepEqual(plan.entries.map((e) => e.seq), [a]);
      assert.deepEqual(plan.admissions, []);
    }
    scheduler.remove(a);
    while (b.tokens.length < 40) assert.deepEqual(step().preempted, []);
    assert.equal(b.numPreemptions, 1);
  });

  test("prefix cache: a later prompt shares cached blocks instead of recomputing them", () => {
    const { scheduler, manager, kv, step } = setup(1024, { batchSize: 256 });
    const system = range(3 * BLOCK_SIZE + 5, 500);
    const a = seq([...system, 1, 2, 3]);
    scheduler.add(a);
    step();
    assert.equal(manager.stats().cachedBlocks, 3);
    const b = seq([...system, 9, 9]);
    const promptLength = b.tokens.length;
    scheduler.add(b);
    const plan = step();
    const entry = plan.entries.find((e) => e.seq === b)!;
    assert.equal(entry.start, 3 * BLOCK_SIZE); // only the uncached tail is computed
    assert.equal(entry.count, promptLength - 3 * BLOCK_SIZE);
    assert.ok(kv.ops.includes(`cp ${a.lease!.seqId} ${b.lease!.seqId} 0 ${3 * BLOCK_SIZE}`));
    assert.equal(manager.stats().prefixHits, 3 * BLOCK_SIZE);
    // Shared blocks are counted once.
    assert.equal(manager.stats().usedCells, 3 * BLOCK_SIZE + (a.numComputed - 3 * BLOCK_SIZE) + (b.numComputed - 3 * BLOCK_SIZE));
  });

  test("prefix cache: a prompt whose prefix is being prefilled waits for it instead of computing it twice", () => {
    const { scheduler, manager, step } = setup(4096, { batchSize: 32 });
    const system = range(4 * BLOCK_SIZE, 1000);
    const a = seq([...system, 1]);
    const b = seq([...system, 2]);
    scheduler.add(a);
    scheduler.add(b);
    step();
    assert.deepEqual(scheduler.running, [a]);
    assert.equal(a.numComputed, 32);
    step();
    assert.deepEqual(scheduler.running, [a], "b still waits while a computes the shared blocks");
    const plan = step();
    const bEntry = plan.entries.find((e) => e.seq === b);
    assert.ok(bEntry, "b is admitted once a's prefix blocks are cached");
    assert.equal(bEntry.start, 4 * BLOCK_SIZE);
    assert.equal(bEntry.count, 1);
    assert.equal(manager.stats().prefixHits, 4 * BLOCK_SIZE);
  });

  test("prefix cache off: the choices of one request share their prompt's blocks, no other request sees them, and they go with the choices", () => {
    const { scheduler, manager, kv, step } = setup(4096, { batchSize: 256 }, false);
    const prompt = range(4 * BLOCK_SIZE + 3, 1000);
    const group = {};
    const choices = [0, 1, 2].map(() => ({ ...seq(prompt), promptGroup: group }));
    const other = seq(prompt);
    for (const s of [...choices, other]) scheduler.add(s);
    step();
    assert.deepEqual(scheduler.running, [choices[0]], "the other choices wait while the first computes the prompt");
    const plan = step();
    for (const choice of choices.slice(1)) {
      const entry = plan.entries.find((e) => e.seq === choice)!;
      assert.equal(entry.start, 4 * BLOCK_SIZE, "a choice computes only the prompt's last partial block");
      assert.ok(kv.ops.includes(`cp ${choices[0]!.lease!.seqId} ${choice.lease!.seqId} 0 ${4 * BLOCK_SIZE}`));
    }
    const otherEntry = plan.entries.find((e) => e.seq === other)!;
    assert.equal(otherEntry.start, 0, "another request with the same prompt computes it all");
    assert.equal(manager.stats().prefixHits, 2 * 4 * BLOCK_SIZE);
    for (const s of [...choices, other]) scheduler.remove(s);
    step();
    assert.equal(manager.stats().cachedBlocks, 0, "idle blocks of a group are dropped at the next step");
    assert.equal(manager.stats().usedCells, 0);
  });

  test("cached blocks survive their sequence, are evicted least-recently-used, and never while in use", () => {
    const { scheduler, manager, kv, step } = setup(5 * BLOCK_SIZE, { batchSize: 256 });
    const a = seq(range(2 * BLOCK_SIZE + 1));
    scheduler.add(a);
    step();
    scheduler.remove(a);
    assert.equal(manager.stats().cachedBlocks, 2);
    assert.equal(manager.freeCells, 3 * BLOCK_SIZE);
    // A different prompt needing 4 blocks of cells evicts only what it must: a's deepest block.
    const b = seq(range(4 * BLOCK_SIZE, 900));
    scheduler.add(b);
    step();
    assert.equal(manager.stats().cachedBlocks, 5); // a's first block and b's four
    assert.equal(manager.freeCells, 0);
    assert.ok(kv.ops.some((o) => o.endsWith(` ${BLOCK_SIZE} -1`)), "a's second block was removed from its holder");
    // b's blocks are pinned while it runs: only a's last block can still go.
    assert.equal(manager.evict(2 * BLOCK_SIZE), false);
    assert.equal(manager.stats().cachedBlocks, 4);
    scheduler.remove(b);
    manager.evictAll();
    kv.applyOps(manager.takeCacheOps());
    assert.equal(manager.stats().usedCells, 0);
    assert.equal(manager.stats().cachedBlocks, 0);
    // Every sequence id is free again and no positions are left in the fake cache.
    for (const set of kv.cells.values()) assert.equal(set.size, 0);
  });

  test("two sequences that computed the same prefix keep one copy of its cells", () => {
    const kv = new FakeKv();
    const manager = new KvManager(1024, 8);
    const prompt = range(2 * BLOCK_SIZE + 3, 300);
    // Both computed the whole prompt themselves (admitted in the same step).
    const a = manager.open({ tokens: prompt })!;
    const b = manager.open({ tokens: prompt })!;
    for (const lease of [a, b]) {
      manager.grow(lease, prompt.length);
      kv.cells.set(lease.seqId, new Set(range(prompt.length)));
    }
    assert.equal(manager.stats().usedCells, 2 * prompt.length);
    manager.commit(a, prompt);
    manager.commit(b, prompt);
    kv.applyOps(manager.takeCacheOps());
    // b's copies of the two full blocks were dropped in favour of a's cells.
    assert.equal(manager.stats().cachedBlocks, 2);
    assert.equal(manager.stats().usedCells, 2 * BLOCK_SIZE + 2 * 3);
    assert.ok(kv.ops.includes(`rm ${b.seqId} 0 ${BLOCK_SIZE}`));
    assert.ok(kv.ops.includes(`cp ${a.seqId} ${b.seqId} 0 ${BLOCK_SIZE}`));
    manager.close(a);
    manager.close(b);
    manager.evictAll();
    kv.applyOps(manager.takeCacheOps());
    assert.equal(manager.stats().usedCells, 0);
    for (const set of kv.cells.values()) assert.equal(set.size, 0);
  });

  test("idle cached blocks may use only the free sequence places' share of the cache", () => {
    // 4 places, 32 blocks of cells: each running sequence takes 8 blocks' worth from the idle cache.
    const { scheduler, manager, step } = setup(32 * BLOCK_SIZE, { parallel: 4, batchSize: 1024 });
    const done = [0, 1, 2].map((i) => seq(range(4 * BLOCK_SIZE, 1000 * (i + 1))));
    for (const s of done) scheduler.add(s);
    step();
    for (const s of done) scheduler.remove(s);
    assert.equal(manager.stats().idleCells, 12 * BLOCK_SIZE);
    // Nothing runs: all four places are free, so the idle cache may stay whole.
    const a = seq(range(BLOCK_SIZE + 1, 50_000));
    scheduler.add(a);
    step();
    assert.equal(manager.stats().idleCells, 12 * BLOCK_SIZE);
    // Now one runs: the idle cache may use 3/4 of 32 blocks, still enough.
    step();
    assert.equal(manager.stats().idleCells, 12 * BLOCK_SIZE);
    // Three more run: no place is free, so no idle block may stay.
    const more = [1, 2, 3].map((i) => seq(range(2, 60_000 * i)));
    for (const s of more) scheduler.add(s);
    step();
    step();
    assert.equal(manager.stats().idleCells, 0, "at full load no idle block is kept");
    // A prompt that shares a running sequence's prefix still finds it: pinned blocks never go.
    assert.equal(manager.matchLength({ tokens: [...a.tokens.slice(0, BLOCK_SIZE), 1] }), BLOCK_SIZE);
  });

  test("an idle block is dropped once idleTokens tokens were computed without it", () => {
    const { scheduler, manager, step } = setup(1 << 16, { parallel: 64, batchSize: 4096 });
    const old = seq(range(2 * BLOCK_SIZE + 1, 7000));
    scheduler.add(old);
    step();
    scheduler.remove(old);
    assert.equal(manager.stats().idleCells, 2 * BLOCK_SIZE);
    // Another sequence runs; the old blocks stay until enough work went by without them.
    const busy = seq(range(IDLE_TOKENS - 100, 90_000));
    scheduler.add(busy);
    step();
    step();
    assert.equal(manager.matchLength(old), 2 * BLOCK_SIZE, "still cached just below the break-even");
    const more = seq(range(200, 200_000));
    scheduler.add(more);
    step();
    step();
    assert.equal(manager.matchLength(old), 0, "dropped after the break-even");
    // The running sequences' own blocks stay (pinned), however old.
    assert.ok(manager.matchLength(busy) > 0);
  });

  test("idle blocks of bigger models may wait longer: their recompute costs more per visited cell", () => {
    const small = idleBlockTokens({ parameterCount: 110e6, layerCount: 12, embeddingLength: 768 });
    const large = idleBlockTokens({ parameterCount: 8e9, layerCount: 32, embeddingLength: 4096 });
    assert.ok(small > 7000 && small < 12000, `llama110m break-even ${small} is in the measured range`);
    assert.ok(large > 4 * small, `8B break-even ${large}`);
    assert.equal(idleBlockTokens({ parameterCount: 0, layerCount: 0, embeddingLength: 0 }), BLOCK_SIZE);
  });
});

describe("executor batches", () => {
  const ctx = new FakeContext(512);
  const plan = (counts: number[]): StepPlan<ScheduledSequence> => {
    const entries = counts.map((count) => ({ seq: seq(range(count)), start: 0, count, sample: true }));
    return {
      entries, numTokens: counts.reduce((a, b) => a + b, 0), numSingleRows: counts.filter((c) => c === 1).length,
      cacheOps: [], releasedSeqIds: [], admissions: [], preempted: [],
    };
  };
  const shapes = (e: Executor<ScheduledSequence>, p: StepPlan<ScheduledSequence>) => e.batches(p).map((b) => [b.entries.map((x) => x.count), b.numTokens]);

  test("on the CPU, decode rows of many sequences beside prompt chunks run as their own batch first", () => {
    const cpu = new Executor(ctx, true);
    const decode = Array<number>(16).fill(1);
    assert.deepEqual(shapes(cpu, plan([...decode, 200, 96])), [[decode, 16], [[200, 96], 296]]);
  });

  test("batches stay whole where splitting does not pay or the kernel differs", () => {
    const cpu = new Executor(ctx, true);
    const whole = (counts: number[]) => [[counts, counts.reduce((a, b) => a + b, 0)]];
    assert.deepEqual(shapes(cpu, plan([1, 1, 1, 200])), whole([1, 1, 1, 200]), "few decode rows: the extra weight pass costs more");
    assert.deepEqual(shapes(cpu, plan([...Array<number>(16).fill(1), 20])), whole([...Array<number>(16).fill(1), 20]), "under 64 rows: no tiles");
    assert.deepEqual(shapes(cpu, plan(Array<number>(70).fill(1))), whole(Array<number>(70).fill(1)), "decode only");
    const gpu = new Executor(ctx, false);
    assert.deepEqual(shapes(gpu, plan([...Array<number>(16).fill(1), 200])), whole([...Array<number>(16).fill(1), 200]));
  });
});
