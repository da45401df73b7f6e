// Images in the scheduler and the executor, without the addon: where plan entries stop around an
// image's rows, image rows as their own batch (encoded, then decoded as embeddings), and the
// prefix cache keyed by image content.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Executor } from "../../src/engine/executor.js";
import { KvManager } from "../../src/engine/kv-manager.js";
import { fitToMedia, MediaIds, positionAt, rowPositions, type MediaSpan } from "../../src/engine/media.js";
import { Scheduler, type ScheduledSequence } from "../../src/engine/scheduler.js";
import type { NativeMediaChunk } from "../../src/native/index.js";
import { FakeContext, SAMPLER } from "../helpers/fake-context.js";

function chunk(nTokens: number, id = "hash"): NativeMediaChunk {
  return {
    type: "image", nTokens, nPos: nTokens, id, nonCausal: false,
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
function imageSeq(before: number, rows: number, after: number, hash = "hash"): ScheduledSequence & { media: MediaSpan[] } {
  const tokens = [...Array.from({ length: before }, (_, i) => 1 + i), ...Array<number>(rows).fill(ids.of(hash)), ...Array.from({ length: after }, (_, i) => 500 + i)];
  return {
    id: ++nextId, tokens, promptLength: tokens.length, sampler: SAMPLER, numComputed: 0, lease: undefined, numPreemptions: 0, finished: false,
    media: [{ start: before, chunk: chunk(rows, hash) }],
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

  test("text, then the image's rows, then the text after them, each in its own step", () => {
    const { scheduler } = setup(64);
    const s = imageSeq(10, 16, 6);
    scheduler.add(s);
    for (const expected of [[s.id, 0, 10], [s.id, 10, 16], [s.id, 26, 6]]) {
      const plan = scheduler.schedule();
      assert.deepEqual(entries(plan), [expected]);
      scheduler.complete(plan);
    }
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
    assert.equal(kv.matchLength(second.tokens), 48, "its text and its image's rows are cached");
    assert.equal(kv.matchLength(imageSeq(16, 32, 4, "another image").tokens), 16, "another image's are not");
  });
});

describe("executing image rows", () => {
  test("token entries run first, then each image's rows: encoded, then decoded as embeddings", async () => {
    const ctx = new FakeContext(64);
    const encoded: string[] = [];
    const executor = new Executor<ScheduledSequence>(ctx, true, async (c) => {
      encoded.push(c.id);
      return new Float32Array(c.nTokens * 4).fill(0.5);
    });
    const kv = new KvManager(1024, 64, true);
    const s = imageSeq(0, 16, 2);
    const t = imageSeq(4, 0, 0);
    s.lease = kv.open(s.tokens);
    t.lease = kv.open(t.tokens);
    const plan = {
      entries: [{ seq: s, start: 0, count: 16, sample: false }, { seq: t, start: 0, count: 4, sample: true }],
      numTokens: 20, numSingleRows: 0, cacheOps: [], releasedSeqIds: [], admissions: [], preempted: [],
    };
    executor.prepare({ ...plan, admissions: [{ seq: t, seqId: t.lease!.seqId, sampler: SAMPLER, promptTokens: Int32Array.of(1, 2, 3, 4), generatedTokens: new Int32Array(0) }] });
    const batches = executor.batches(plan);
    assert.deepEqual(batches.map((b) => b.entries.map((e) => e.seq.id)), [[t.id], [s.id]]);
    for (const b of batches) assert.equal((await executor.run(b)).status, "ok");
    assert.deepEqual(encoded, ["hash"]);
    assert.deepEqual(ctx.calls.filter((c) => c.startsWith("step") || c.startsWith("embd")), [`step ${t.lease!.seqId}:0`, `embd ${s.lease!.seqId}:0 16`]);
  });
});
