// Images in the scheduler and the executor, without the addon: where plan entries stop around an
// image's rows, image rows as their own batch (encoded, then decoded as embeddings), and the
// prefix cache keyed by image content.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Executor } from "../../src/engine/executor.js";
import { KvManager } from "../../src/engine/kv-manager.js";
import { fitToMedia, MediaIds, mediaSpanAt, positionAt, rowPositions, withChunkIds, type MediaSpan } from "../../src/engine/media.js";
import { Scheduler, type ScheduledSequence, type StepPlan } from "../../src/engine/scheduler.js";
import type { NativeMediaChunk } from "../../src/native/index.js";
import { FakeContext, SAMPLER } from "../helpers/fake-context.js";

function chunk(nTokens: number, id = "hash", nonCausal = false): NativeMediaChunk {
  return {
    type: "image", nTokens, nPos: nTokens, id, nonCausal,
    positions: (pos0: number) => Int32Array.from({ length: nTokens }, (_, i) => pos0 + i),
  };
}

/**
 * An M-RoPE image chunk of nx x ny rows as llama.cpp's mtmd makes one (Qwen2-VL): it advances
 * positions by max(nx, ny); row i's positions are t = pos0, y = pos0 + i / nx, x = pos0 + i % nx, z = 0.
 */
function mropeChunk(nx: number, ny: number): NativeMediaChunk {
  const nTokens = nx * ny;
  return {
    type: "image", nTokens, nPos: Math.max(nx, ny), id: `mrope-${nx}x${ny}`, nonCausal: false,
    positions: (pos0: number) => {
      const out = new Int32Array(4 * nTokens);
      for (let i = 0; i < nTokens; i++) {
        out[i] = pos0;
        out[nTokens + i] = pos0 + Math.floor(i / nx);
        out[2 * nTokens + i] = pos0 + (i % nx);
      }
      return out;
    },
  };
}

const ids = new MediaIds();
let nextId = 0;
/** A prompt of `before` text tokens, an image of `rows` rows, `after` text tokens. */
function imageSeq(before: number, rows: number, after: number, hash = "hash", nonCausal = false): ScheduledSequence & { media: MediaSpan[] } {
  const tokens = [...Array.from({ length: before }, (_, i) => 1 + i), ...Array<number>(rows).fill(ids.of(hash)), ...Array.from({ length: after }, (_, i) => 500 + i)];
  return {
    id: ++nextId, tokens, promptLength: tokens.length, sampler: SAMPLER, numComputed: 0, lease: undefined, numPreemptions: 0, finished: false,
    media: [{ start: before, chunk: chunk(rows, hash, nonCausal) }],
  };
}

describe("media spans", () => {
  test("an entry stops where an image starts, takes an image's rest whole or not at all", () => {
    const media: MediaSpan[] = [{ start: 10, chunk: chunk(16) }];
    assert.equal(fitToMedia(media, 0, 64), 10, "text up to the image");
    assert.equal(fitToMedia(media, 0, 5), 5, "text before the image");
    assert.equal(fitToMedia(media, 10, 64), 16, "the image's rows, nothing after them");
    assert.equal(fitToMedia(media, 10, 15), 0, "the rows do not fit: none");
    assert.equal(fitToMedia(media, 18, 64), 8, "the rest of an image whose first rows were cached");
    assert.equal(fitToMedia(media, 26, 64), 64, "after the image");
    assert.equal(fitToMedia(undefined, 0, 7), 7);
  });

  test("the same image has the same placeholder; another image another one; no placeholder is a token", () => {
    const local = new MediaIds();
    assert.equal(local.of("a"), local.of("a"));
    assert.notEqual(local.of("a"), local.of("b"));
    assert.ok(local.of("c") < 0);
  });
});

describe("a file's chunks", () => {
  // mtmd gives each chunk of a file the file's id; a tiled image (LLaVA-1.6, MiniCPM-V, SmolVLM) is an overview and tiles.
  test("a tiled file's chunks each get its id and their place in it; a file of one chunk keeps its id", () => {
    const tiled = withChunkIds({ id: "file", width: 48, height: 40, audio: false, chunks: [chunk(16, "file"), chunk(16, "file"), chunk(16, "file")] });
    assert.deepEqual(tiled.chunks.map((c) => c.id), ["file#0", "file#1", "file#2"]);
    assert.equal(new Set(tiled.chunks.map((c) => ids.of(c.id))).size, 3, "a placeholder token each");
    assert.equal(withChunkIds({ id: "one", width: 32, height: 32, audio: false, chunks: [chunk(16, "one")] }).chunks[0]!.id, "one");
  });
});

describe("positions", () => {
  test("with ordinary positions a token's position is its index, rows too", () => {
    const media: MediaSpan[] = [{ start: 4, chunk: chunk(6) }, { start: 12, chunk: chunk(3) }];
    assert.deepEqual(Array.from({ length: 20 }, (_, i) => positionAt(media, i)), Array.from({ length: 20 }, (_, i) => i));
    assert.deepEqual(rowPositions(media, media[1]!, 1, 2), Int32Array.of(13, 14));
    assert.equal(positionAt(undefined, 7), 7);
  });

  test("M-RoPE: an image's rows share its start position, the text after it advances by max(nx, ny)", () => {
    // 5 text tokens, a 3 x 2 image (6 rows, 3 positions), 2 tokens, a 2 x 2 image (4 rows, 2 positions), text.
    const media: MediaSpan[] = [{ start: 5, chunk: mropeChunk(3, 2) }, { start: 13, chunk: mropeChunk(2, 2) }];
    const positions = Array.from({ length: 19 }, (_, i) => positionAt(media, i));
    assert.deepEqual(positions, [0, 1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 8, 9, 10, 10, 10, 10, 12, 13]);
  });

  test("M-RoPE: a span's rows give four positions each, each dimension sliced alike", () => {
    const media: MediaSpan[] = [{ start: 2, chunk: mropeChunk(2, 2) }, { start: 8, chunk: mropeChunk(3, 2) }];
    // The second image starts at index 8, position 8 - (4 - 2) = 6; rows 2..4 of its 3 x 2 grid.
    assert.deepEqual(Array.from(rowPositions(media, media[1]!, 2, 3)), [
      6, 6, 6, // t: the image's start
      6, 7, 7, // y: its row in the grid
      8, 6, 7, // x: its column
      0, 0, 0, // z: unused
    ]);
    const whole = rowPositions(media, media[0]!, 0, 4);
    assert.deepEqual(Array.from(whole), Array.from(media[0]!.chunk.positions(2)), "a whole span: the chunk's own positions");
  });

  test("M-RoPE: positions follow from the prompt alone, so a cached prefix or a replay after preemption counts alike", () => {
    const turn: MediaSpan[] = [{ start: 3, chunk: mropeChunk(4, 3) }];
    const followUp: MediaSpan[] = [...turn, { start: 20, chunk: mropeChunk(2, 2) }];
    const positions = (media: MediaSpan[]) => Array.from({ length: 30 }, (_, i) => positionAt(media, i));
    assert.deepEqual(positions(followUp).slice(0, 20), positions(turn).slice(0, 20), "the shared prefix of a follow-up turn: the same positions");
    assert.deepEqual([positions(followUp)[15], positions(followUp)[24]], [7, 14]);
    const wider: MediaSpan[] = [{ start: 3, chunk: mropeChunk(6, 2) }];
    assert.equal(positionAt(wider, 15), 9, "as many rows in another grid: the text after it moves");
  });
});

describe("scheduling images", () => {
  const setup = (batchSize: number) => {
    const kv = new KvManager(1024, 64, true);
    return { kv, scheduler: new Scheduler<ScheduledSequence>(kv, { parallel: 8, batchSize, maxWaiting: 8 }) };
  };
  const entries = (plan: ReturnType<Scheduler<ScheduledSequence>["schedule"]>) => plan.entries.map((e) => [e.seq.id, e.start, e.count]);

  test("text and the image after it in one step, as two entries; the text after the image in the next", () => {
    const { scheduler } = setup(64);
    const s = imageSeq(10, 16, 6);
    scheduler.add(s);
    for (const expected of [[[s.id, 0, 10], [s.id, 10, 16]], [[s.id, 26, 6]]]) {
      const plan = scheduler.schedule();
      assert.deepEqual(entries(plan), expected);
      scheduler.complete(plan);
    }
  });

  test("an image that does not fit the step's budget beside its text waits for the next step", () => {
    const { scheduler } = setup(20);
    const s = imageSeq(10, 16, 6);
    scheduler.add(s);
    let plan = scheduler.schedule();
    assert.deepEqual(entries(plan), [[s.id, 0, 10]], "16 rows do not fit the 10 tokens left");
    scheduler.complete(plan);
    plan = scheduler.schedule();
    assert.deepEqual(entries(plan), [[s.id, 10, 16]]);
  });

  test("rows that do not fit the step's budget wait for a step with room; a smaller prompt goes first", () => {
    const { scheduler } = setup(24);
    const a = imageSeq(0, 20, 4);
    const b = imageSeq(10, 20, 4, "other");
    scheduler.add(b);
    scheduler.add(a);
    let plan = scheduler.schedule();
    assert.deepEqual(entries(plan), [[b.id, 0, 10]], "b's text; a's 20 rows do not fit the 14 tokens left");
    scheduler.complete(plan);
    plan = scheduler.schedule();
    assert.deepEqual(entries(plan), [[b.id, 10, 20]], "b's rows; a still waits");
    scheduler.complete(plan);
    plan = scheduler.schedule();
    assert.deepEqual(entries(plan), [[b.id, 30, 4], [a.id, 0, 20]]);
  });

  test("a prompt with an image already cached attaches to its blocks", () => {
    const { kv, scheduler } = setup(64);
    const first = imageSeq(16, 32, 4);
    scheduler.add(first);
    for (let i = 0; i < 3; i++) scheduler.complete(scheduler.schedule());
    const second = imageSeq(16, 32, 4);
    assert.equal(kv.matchLength(second), 48, "its text and its image's rows are cached");
    assert.equal(kv.matchLength(imageSeq(16, 32, 4, "another image")), 16, "another image's are not");
  });

  test("a burst on one image: the others wait for its rows, then compute only their own text, the image's last rows shared too", () => {
    const { kv, scheduler } = setup(512);
    // 7 tokens of text and 256 rows: the image ends 7 rows into a block.
    const burst = [0, 1, 2, 3].map((i) => {
      const s = imageSeq(7, 256, 20 + i);
      s.tokens.splice(263 + i, 1, 900 + i); // each question its own from its (i + 1)-th token
      return s;
    });
    for (const s of burst) scheduler.add(s);
    const steps: number[][][] = [];
    while (burst.some((s) => s.tokens.length === s.promptLength)) {
      const plan = scheduler.schedule();
      steps.push(entries(plan));
      scheduler.complete(plan);
      for (const e of plan.entries) if (e.sample) e.seq.tokens.push(7);
    }
    const [a, b, c, d] = burst.map((s) => s.id);
    assert.deepEqual(steps.slice(0, 2), [
      [[a, 0, 7], [a, 7, 256]],
      [[a, 263, 20], [b, 263, 21], [c, 263, 22], [d, 263, 23]],
    ], "the first prompt's text and image, then every question; no other request recomputes a row of the image");
    assert.equal(kv.stats().prefixHits, 3 * 263);
  });

  test("KV events report the 16-token blocks before the image's end; the block cut short there and those after it are no router's hashes", () => {
    const stored: number[][] = [];
    const events = { hash: (_: bigint | undefined, tokens: ArrayLike<number>) => BigInt(stored.length + tokens.length), stored: (_h: bigint, _p: bigint | undefined, tokens: ArrayLike<number>) => void stored.push(Array.from(tokens)), removed: () => {}, cleared: () => {} };
    const kv = new KvManager(1024, 64, true, Infinity, events);
    const scheduler = new Scheduler<ScheduledSequence>(kv, { parallel: 8, batchSize: 512, maxWaiting: 8 });
    const s = imageSeq(7, 256, 40);
    scheduler.add(s);
    while (s.numComputed < s.promptLength) scheduler.complete(scheduler.schedule());
    assert.equal(stored.length, 16, "blocks [0, 256): the text and the image's first 249 rows");
    assert.ok(stored.every((tokens) => tokens.length === 16));
    assert.equal(kv.stats().cachedBlocks, 16 + 1 + 2, "the cache still holds [256, 263) and [263, 295)");
  });
});

describe("executing image rows", () => {
  /** An executor over a fake context whose encoder makes rows of 4 floats and notes the images it encodes. */
  function mediaExecutor(batchCapacity = 64, nUbatch = batchCapacity) {
    const ctx = new FakeContext(batchCapacity, nUbatch);
    const encoded: string[] = [];
    const executor = new Executor<ScheduledSequence>(ctx, true, async (c) => {
      encoded.push(c.id);
      return new Float32Array(c.nTokens * 4).fill(0.5);
    });
    return { ctx, encoded, executor, kv: new KvManager(1024, 64, true) };
  }

  function planOf(entries: Array<{ seq: ScheduledSequence; start: number; count: number; sample: boolean }>) {
    return {
      entries, numTokens: entries.reduce((n, e) => n + e.count, 0), numSingleRows: 0, cacheOps: [], releasedSeqIds: [], admissions: [], preempted: [],
    };
  }

  test("token entries run first, then each image's rows: encoded, then decoded as embeddings", async () => {
    const { ctx, encoded, executor, kv } = mediaExecutor();
    const s = imageSeq(0, 16, 2);
    const t = imageSeq(4, 0, 0);
    s.lease = kv.open(s);
    t.lease = kv.open(t);
    const plan = planOf([{ seq: s, start: 0, count: 16, sample: false }, { seq: t, start: 0, count: 4, sample: true }]);
    executor.prepare({ ...plan, admissions: [{ seq: t, seqId: t.lease!.seqId, sampler: SAMPLER, promptTokens: Int32Array.of(1, 2, 3, 4), generatedTokens: new Int32Array(0) }] });
    const batches = executor.batches(plan);
    assert.deepEqual(batches.map((b) => b.entries.map((e) => e.seq.id)), [[t.id], [s.id]]);
    for (const b of batches) assert.equal((await executor.run(b)).status, "ok");
    assert.deepEqual(encoded, ["hash"]);
    assert.deepEqual(ctx.calls.filter((c) => c.startsWith("step") || c.startsWith("embd")), [`step ${t.lease!.seqId}:0`, `embd ${s.lease!.seqId}:0+16`]);
  });

  test("a step's images of several sequences are decoded in one call, each row into its own sequence at its own positions", async () => {
    const { ctx, encoded, executor, kv } = mediaExecutor();
    const a = imageSeq(2, 16, 2, "a");
    const b = imageSeq(3, 8, 2, "b");
    const c = imageSeq(2, 16, 2, "a");
    for (const seq of [a, b, c]) seq.lease = kv.open(seq);
    // c's first 12 rows came from the prefix cache: it computes the last 4.
    const plan = planOf([{ seq: a, start: 2, count: 16, sample: false }, { seq: b, start: 3, count: 8, sample: false }, { seq: c, start: 14, count: 4, sample: false }]);
    const batches = executor.batches(plan);
    assert.deepEqual(batches.map((x) => x.entries.map((e) => e.seq.id)), [[a.id, b.id, c.id]]);
    assert.equal((await executor.run(batches[0])).status, "ok");
    assert.deepEqual(encoded, ["a", "b", "a"], "one encode per entry, in order (the encoder cache shares the same image)");
    assert.deepEqual(ctx.calls.filter((x) => x.startsWith("embd")), [`embd ${a.lease!.seqId}:2+16 ${b.lease!.seqId}:3+8 ${c.lease!.seqId}:14+4`]);
  });

  test("images attended both ways go in calls of their own that fit one micro-batch; the others fill the batch", async () => {
    const { ctx, executor, kv } = mediaExecutor(64, 20);
    const causal = [imageSeq(0, 16, 1, "c1"), imageSeq(0, 16, 1, "c2")];
    const both = [imageSeq(0, 12, 1, "n1", true), imageSeq(0, 12, 1, "n2", true)];
    for (const seq of [...causal, ...both]) seq.lease = kv.open(seq);
    const plan = planOf([...causal, ...both].map((seq) => ({ seq, start: 0, count: seq.media[0].chunk.nTokens, sample: false })));
    const batches = executor.batches(plan);
    assert.deepEqual(batches.map((x) => x.entries.map((e) => e.seq.id)), [causal.map((x) => x.id), [both[0].id], [both[1].id]]);
    for (const x of batches) assert.equal((await executor.run(x)).status, "ok");
    assert.equal(ctx.calls.filter((x) => x.startsWith("embd")).length, 3);
  });

  test("M-RoPE rows of several images: positions stay dimension-major over the whole call", async () => {
    const ctx = new FakeContext(64);
    const decoded: Int32Array[] = [];
    ctx.decodeEmbeddings = async (rows) => {
      decoded.push(rows.positions);
      return { status: "ok", decodeNs: 1 };
    };
    const executor = new Executor<ScheduledSequence>(ctx, true, async (c) => new Float32Array(c.nTokens * 4));
    const kv = new KvManager(1024, 64, true);
    const seqs = [mropeChunk(2, 2), mropeChunk(3, 1)].map((image, k) => {
      const tokens = [7, ...Array<number>(image.nTokens).fill(-1 - k), 8];
      const media = [{ start: 1, chunk: image }];
      const seq: ScheduledSequence = {
        id: ++nextId, tokens, promptLength: tokens.length, sampler: SAMPLER, numComputed: 0, lease: kv.open({ tokens, media }), numPreemptions: 0, finished: false, media,
      };
      return seq;
    });
    const batches = executor.batches(planOf(seqs.map((seq) => ({ seq, start: 1, count: seq.media![0].chunk.nTokens, sample: false }))));
    assert.equal(batches.length, 1);
    assert.equal((await executor.run(batches[0])).status, "ok");
    const first = rowPositions(seqs[0].media!, seqs[0].media![0], 0, 4);
    const second = rowPositions(seqs[1].media!, seqs[1].media![0], 0, 3);
    const expected = [0, 1, 2, 3].flatMap((d) => [...first.subarray(d * 4, d * 4 + 4), ...second.subarray(d * 3, d * 3 + 3)]);
    assert.deepEqual([...decoded[0]], expected);
  });
});

/**
 * llama.cpp's cache as far as cache operations see it: cells with a position and the sequences
 * that hold them (a copy adds a sequence to cells, it copies no data), several cells of one
 * sequence at one position (an M-RoPE image's rows). A cell keeps the token index it was computed
 * for, so a sequence's cells can be checked against what it should hold; M-RoPE's order rule
 * (llama_batch_allocr::init: a token's position above the sequence's last, a row's not below it)
 * is checked as llama.cpp does.
 */
class PositionedKv {
  private cells: Array<{ index: number; pos: number; seqs: Set<number> }> = [];

  apply(plan: StepPlan<ScheduledSequence>): void {
    const inRange = (p: number, p0: number, p1: number) => (p0 < 0 || p >= p0) && (p1 < 0 || p < p1);
    for (const op of plan.cacheOps) {
      if (op.kind === "remove") {
        for (const c of this.cells) if (inRange(c.pos, op.p0, op.p1)) c.seqs.delete(op.seqId);
      } else {
        for (const c of this.cells) if (c.seqs.has(op.src) && inRange(c.pos, op.p0, op.p1)) c.seqs.add(op.dst);
      }
    }
    this.cells = this.cells.filter((c) => c.seqs.size > 0);
    for (const e of plan.entries) {
      const seqId = e.seq.lease!.seqId;
      const last = Math.max(-1, ...this.of(seqId).map((c) => c.pos));
      const added = Array.from({ length: e.count }, (_, i) => ({ index: e.start + i, pos: positionAt(e.seq.media, e.start + i), seqs: new Set([seqId]) }));
      const rows = mediaSpanAt(e.seq.media, e.start) !== undefined;
      assert.ok(rows ? added[0]!.pos >= last : added[0]!.pos > last, `seq ${e.seq.id}: position ${added[0]!.pos} after ${last}`);
      this.cells.push(...added);
    }
  }

  of(seqId: number): Array<{ index: number; pos: number }> {
    return this.cells.filter((c) => c.seqs.has(seqId));
  }

  get total(): number {
    return this.cells.length;
  }
}

/** A prompt of text runs and M-RoPE images ([nx, ny, hash]), text tokens numbered from `from`. */
function mropeSeq(parts: Array<number | [number, number, string]>, from = 1): ScheduledSequence & { media: MediaSpan[] } {
  const tokens: number[] = [];
  const media: MediaSpan[] = [];
  for (const part of parts) {
    if (typeof part === "number") {
      tokens.push(...Array.from({ length: part }, (_, i) => from + tokens.length + i));
      continue;
    }
    const [nx, ny, hash] = part;
    media.push({ start: tokens.length, chunk: { ...mropeChunk(nx, ny), id: hash } });
    tokens.push(...Array<number>(nx * ny).fill(ids.of(hash)));
  }
  return { id: ++nextId, tokens, promptLength: tokens.length, sampler: SAMPLER, numComputed: 0, lease: undefined, numPreemptions: 0, finished: false, media };
}

describe("executing after an M-RoPE image", () => {
  test("text after the image runs at its positions (index minus the rows beyond max(nx, ny)), the rows at four each", async () => {
    const ctx = new FakeContext(64);
    const executor = new Executor<ScheduledSequence>(ctx, true, async (c) => new Float32Array(c.nTokens * 4));
    const s = mropeSeq([4, [3, 2, "x"], 5]);
    s.lease = new KvManager(1024, 64, true).open(s)!;
    for (const [start, count] of [[0, 4], [4, 6], [10, 5]] as const) {
      const plan = { entries: [{ seq: s, start, count, sample: false }], numTokens: count, numSingleRows: 0, cacheOps: [], releasedSeqIds: [], admissions: [], preempted: [] };
      for (const b of executor.batches(plan)) assert.equal((await executor.run(b)).status, "ok");
    }
    const seqId = s.lease.seqId;
    assert.deepEqual(ctx.calls.filter((c) => c.startsWith("step") || c.startsWith("embd")), [`step ${seqId}:0`, `embd ${seqId}:4+6, 4 positions a row`, `step ${seqId}:7`]);
  });
});

describe("M-RoPE cells in the KV cache", () => {
  const setup = (cells: number, parallel = 8, batchSize = 64) => {
    const kv = new KvManager(cells, 64, true);
    const scheduler = new Scheduler<ScheduledSequence>(kv, { parallel, batchSize, maxWaiting: 64 });
    const cache = new PositionedKv();
    /** A step: planned, its operations and rows applied, completed; sampled sequences get a token. */
    const step = () => {
      const plan = scheduler.schedule();
      cache.apply(plan);
      scheduler.complete(plan);
      for (const e of plan.entries) if (e.sample) e.seq.tokens.push(7);
      for (const s of scheduler.running) {
        const held = cache.of(s.lease!.seqId).sort((a, b) => a.index - b.index);
        assert.deepEqual(held.map((c) => c.index), Array.from({ length: s.numComputed }, (_, i) => i), `seq ${s.id} holds each of its computed cells once`);
        for (const c of held) assert.equal(c.pos, positionAt(s.media, c.index), `seq ${s.id}: cell ${c.index}'s position`);
      }
      assert.ok(cache.total <= kv.stats().usedCells, `the cache holds ${cache.total} cells, the manager counts ${kv.stats().usedCells}`);
      return plan;
    };
    return { kv, scheduler, cache, step };
  };

  test("a second identical prompt shares every block, the image's last rows a block of their own, whose cells sit at their positions", () => {
    const { kv, scheduler, cache, step } = setup(1024);
    // Text [0, 10), a 6 x 4 image's 24 rows [10, 34) at position 10, text from 34 at position 16.
    const parts: Array<number | [number, number, string]> = [10, [6, 4, "cat"], 20];
    const first = mropeSeq(parts);
    scheduler.add(first);
    while (first.tokens.length < first.promptLength + 3) step();
    scheduler.remove(first);
    const second = mropeSeq(parts);
    assert.equal(kv.matchLength(second), 50, "blocks [0, 16) and [16, 32) end inside the image and are reached through; [32, 34) ends with it; then [34, 50)");
    const hits = kv.stats().prefixHits;
    scheduler.add(second);
    const plan = step();
    assert.equal(kv.stats().prefixHits - hits, 50);
    assert.deepEqual(plan.entries.map((e) => [e.start, e.count]), [[50, 4]], "only the prompt's last 4 tokens are computed");
    assert.deepEqual(cache.of(second.lease!.seqId).filter((c) => c.index === 47).map((c) => c.pos), [47 - 18]);
    assert.equal(kv.matchLength(mropeSeq([10, [6, 4, "cat"], 5])), 34, "a follow-up with other text after the image shares up to the image's end");
    assert.equal(kv.matchLength(mropeSeq([10, [6, 4, "dog"], 20])), 0);
    scheduler.remove(second);
    kv.evictAll();
    step();
    assert.equal(cache.total, 0, "evicted blocks leave no cell behind");
  });

  test("random prompts with shared images through preemptions and evictions: every sequence holds its cells at their positions", () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const shapes: Array<[number, number, string]> = [[6, 4, "a"], [3, 3, "b"], [8, 2, "c"], [2, 7, "d"]];
    // 320 cells for 6 places: sequences are preempted and cached blocks evicted as they grow.
    const { kv, scheduler, cache, step } = setup(320, 6, 48);
    const prompts = Array.from({ length: 30 }, () => {
      const parts: Array<number | [number, number, string]> = [1 + random(20)];
      for (let k = random(3); k >= 0; k--) parts.push(shapes[random(shapes.length)]!, 1 + random(12));
      return mropeSeq(parts, random(2) * 1000);
    });
    let preemptions = 0;
    for (const p of prompts) scheduler.add(p);
    for (let n = 0; scheduler.hasWork && n < 2000; n++) {
      preemptions += step().preempted.length;
      for (const s of [...scheduler.running]) if (s.tokens.length >= s.promptLength + 4) scheduler.remove(s);
    }
    assert.equal(scheduler.hasWork, false);
    assert.ok(preemptions > 0, "the cache was small enough to preempt");
    assert.ok(kv.stats().prefixHits > 0, "prompts shared blocks");
    kv.evictAll();
    step();
    assert.equal(cache.total, 0);
    assert.equal(kv.stats().usedCells, 0);
  });
});
