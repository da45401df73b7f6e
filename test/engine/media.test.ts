// Images in the scheduler and the executor, without the addon: where plan entries stop around an
// image's rows, image rows as their own batch (encoded, then decoded as embeddings), and the
// prefix cache keyed by image content.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Executor } from "../../src/engine/executor.js";
import { KvManager } from "../../src/engine/kv-manager.js";
import { fitToMedia, MediaIds, type MediaSpan } from "../../src/engine/media.js";
import { Scheduler, type ScheduledSequence } from "../../src/engine/scheduler.js";
import type { NativeMediaChunk } from "../../src/native/index.js";
import { FakeContext, SAMPLER } from "../helpers/fake-context.js";

function chunk(nTokens: number, id = "hash"): NativeMediaChunk {
  return {
    type: "image", nTokens, nPos: nTokens, id, nonCausal: false,
    positions: (pos0: number) => Int32Array.from({ length: nTokens }, (_, i) => pos0 + i),
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
