// The step loop with the real scheduler, KV manager and executor over a fake native context
// (test/helpers/fake-context.ts): no room, preemption and replay, failed steps and admissions,
// cancellation mid-step, grammar picks deferred off the step, in milliseconds and without the addon.
import { setImmediate as afterPendingCallbacks } from "node:timers/promises";
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BadRequestError, CancelledError, InternalError } from "../../src/api/errors.js";
import { Executor } from "../../src/engine/executor.js";
import { KvManager } from "../../src/engine/kv-manager.js";
import { EngineMetrics } from "../../src/engine/metrics.js";
import { Scheduler } from "../../src/engine/scheduler.js";
import { Sequence, type Vocabulary } from "../../src/engine/sequence.js";
import { StepLoop } from "../../src/engine/step-loop.js";
import { FakeContext, nativeError, SAMPLER } from "../helpers/fake-context.js";

const vocab: Vocabulary = {
  tokenBytes: (token) => new TextEncoder().encode(`${token} `),
  isEog: () => false,
};

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

function setup(cells = 1024, limits: Partial<{ parallel: number; batchSize: number }> = {}) {
  const ctx = new FakeContext(512);
  const kv = new KvManager(cells, 16, true);
  const scheduler = new Scheduler<Sequence>(kv, { parallel: 8, batchSize: 256, maxWaiting: 16, ...limits });
  const metrics = new EngineMetrics();
  const executor = new Executor<Sequence>(ctx, false);
  const loop = new StepLoop({ scheduler, executor, kv, metrics, vocab, yieldBetweenSteps: false });
  /** Submits a prompt; resolves to the generated tokens, or rejects with the sequence's error. */
  const generate = (prompt: number[], maxTokens: number, options: { signal?: AbortSignal; grammar?: string } = {}) => {
    const seq = new Sequence(prompt, { ...SAMPLER, grammar: options.grammar }, { maxTokens, maxContext: cells, stop: [], ignoreEos: false }, vocab);
    loop.submit(seq, options.signal);
    const done = (async () => {
      for await (const event of seq.events) if (event.type === "done") return event.stats.tokens.slice(prompt.length);
      throw new Error("no done event");
    })();
    return { seq, done };
  };
  /** Once everything finished: only cached prefix blocks hold cells (nothing leaked). */
  const assertNoPrivateCells = () => {
    const s = kv.stats();
    assert.equal(s.usedCells, s.cachedBlocks * 16);
  };
  return { ctx, kv, metrics, loop, executor, generate, assertNoPrivateCells };
}

/** What a prompt generates with the loop to itself and nothing going wrong. */
async function alone(prompt: number[], maxTokens: number): Promise<number[]> {
  return setup().generate(prompt, maxTokens).done;
}

describe("step loop", () => {
  test("runs sequences to the end; step timings land in the metrics", async () => {
    const { generate, metrics, assertNoPrivateCells } = setup();
    const [a, b] = await Promise.all([generate(range(20), 5).done, generate(range(30, 500), 3).done]);
    assert.equal(a.length, 5);
    assert.equal(b.length, 3);
    assert.deepEqual(a, await alone(range(20), 5));
    // 1 step prefills both and samples their first tokens, then 4 more decode a (2 of them b too).
    assert.equal(metrics.steps.steps, 5);
    assert.equal(metrics.steps.tokens, 20 + 30 + 2 * 2 + 2);
    assert.equal(metrics.steps.rows, 5 + 3);
    assert.equal(metrics.steps.decodeNs, 5 * 1000);
    assert.equal(metrics.generationTokens, 8);
    assertNoPrivateCells();
  });

  test("a step that finds no room is undone, the newest sequence is preempted, and both finish as if alone", async () => {
    const { ctx, generate, metrics, assertNoPrivateCells } = setup();
    // Step 1 prefills a; step 2 (a's decode and b's prefill) finds no room.
    ctx.faults.set(2, "no_room");
    const retry = ctx.pause(3);
    const a = generate(range(20), 6);
    const b = generate(range(20, 300), 6);
    await retry.started;
    // The retry counts a's cells once: the cell of its undone decode is not counted twice.
    assert.equal(a.seq.lease!.cells, a.seq.numComputed + 1);
    retry.resume();
    assert.deepEqual(await a.done, await alone(range(20), 6));
    assert.deepEqual(await b.done, await alone(range(20, 300), 6));
    assert.equal(metrics.preemptions, 1);
    assert.equal(b.seq.numPreemptions, 1);
    assertNoPrivateCells();
  });

  test("a preempted sequence is re-admitted with its prompt and generated tokens replayed into its new sampler", async () => {
    // 48 cells: two 20-token prompts fill the cache after 4 decode steps; the newer one waits.
    const { ctx, generate, metrics } = setup(48);
    const a = generate(range(20), 12);
    const b = generate(range(20, 300), 12);
    const aTokens = await a.done;
    const bTokens = await b.done;
    assert.ok(b.seq.numPreemptions >= 1 && metrics.preemptions >= 1, "b was preempted");
    const replays = ctx.calls.filter((c) => c.includes(" replay "));
    assert.ok(replays.length >= 1, "b's generated tokens were replayed");
    const replayed = replays[0].split(" ")[3].split(",").map(Number);
    assert.deepEqual(replayed, bTokens.slice(0, replayed.length));
    // The replay follows b's prompt into the same new sampler, before the step that recomputes it.
    const at = ctx.calls.indexOf(replays[0]);
    const seqId = replays[0].split(" ")[1];
    assert.deepEqual(ctx.calls.slice(at - 2, at), [`set ${seqId}`, `accept ${seqId} prompt ${range(20, 300).join(",")}`]);
    assert.match(ctx.calls[at + 1], /^step /);
    // The fake sampler samples from its whole window: without the replay b would continue differently.
    assert.deepEqual(aTokens, await alone(range(20), 12));
    assert.deepEqual(bTokens, await alone(range(20, 300), 12));
  });

  test("a failed native step fails its sequences with a typed error; the loop serves on", async () => {
    const { ctx, generate, assertNoPrivateCells } = setup(1024, { parallel: 1 });
    ctx.faults.set(1, nativeError("llama_decode failed with code -3", "ERR_DECODE"));
    const a = generate(range(20), 4);
    const b = generate(range(20, 300), 4); // waits: one sequence runs at a time
    await assert.rejects(a.done, (e: Error) => e instanceof InternalError && e.status === 500 && /llama_decode failed with code -3/.test(e.message));
    assert.deepEqual(await b.done, await alone(range(20, 300), 4));
    assert.deepEqual(await generate(range(10, 900), 3).done, await alone(range(10, 900), 3));
    assertNoPrivateCells();
  });

  test("a sampler the native context refuses fails only its sequence, as a bad request", async () => {
    const { ctx, generate, assertNoPrivateCells } = setup();
    ctx.badGrammars.add("root ::= (");
    const bad = generate(range(20), 4, { grammar: "root ::= (" });
    const good = generate(range(20, 300), 4);
    await assert.rejects(bad.done, (e: Error) => e instanceof BadRequestError && /failed to parse grammar/.test(e.message));
    assert.deepEqual(await good.done, await alone(range(20, 300), 4));
    assertNoPrivateCells();
  });

  test("a sequence cancelled mid-step rejects at once; its cells and sampler are freed before the next decode", async () => {
    const { ctx, generate } = setup();
    const controller = new AbortController();
    // Step 1 prefills a, step 2 decodes a and prefills b, step 3 decodes both and is held.
    const step3 = ctx.pause(3);
    const a = generate(range(20), 8, { signal: controller.signal });
    const b = generate(range(20, 300), 8);
    await step3.started;
    const seqId = a.seq.lease!.seqId;
    controller.abort();
    await assert.rejects(a.done, CancelledError);
    step3.resume();
    assert.deepEqual(await b.done, await alone(range(20, 300), 8));
    const steps = ctx.calls.flatMap((c, i) => (c.startsWith("step ") ? [i] : []));
    // Before step 4: a's private cells (past its cached first block) and its sampler went.
    const between = ctx.calls.slice(steps[2] + 1, steps[3]);
    assert.deepEqual(between, [`rm ${seqId} 16 -1`, `clear ${seqId}`]);
    assert.ok(!ctx.calls[steps[3]].split(" ").some((row) => row.startsWith(`${seqId}:`)), ctx.calls[steps[3]]);
    assert.equal(a.seq.tokens.length, 20 + 2, "the token a's cancelled step sampled was dropped");
  });

  describe("a grammar's deferred pick (the fake's grammar refuses every choice)", () => {
    const grammar = 'root ::= "x"';
    const stepsOf = (calls: string[]) => calls.filter((c) => c.startsWith("step "));

    test("runs off the step: the other sequences step on while it is held, and each gets the tokens it would alone", async () => {
      const { ctx, generate, assertNoPrivateCells } = setup();
      const firstPick = ctx.pausePick(1);
      const constrained = generate(range(20), 4, { grammar });
      const neighbour = generate(range(20, 300), 6);
      await firstPick.started;
      // The neighbour runs to its end while the constrained sequence waits for its first token
      // (the fake refuses a step that samples a sequence awaiting its pick).
      assert.deepEqual(await neighbour.done, await alone(range(20, 300), 6));
      assert.equal(constrained.seq.generatedCount, 0);
      const seqId = constrained.seq.lease!.seqId;
      assert.ok(!stepsOf(ctx.calls).slice(1).some((c) => c.includes(` ${seqId}:`)), "not planned while its pick was held");
      firstPick.resume();
      assert.deepEqual(await constrained.done, await alone(range(20), 4));
      assert.equal(ctx.calls.filter((c) => c === `pick ${seqId}`).length, 4, "each token from a pick");
      assertNoPrivateCells();
    });

    test("a cancelled sequence's pick is cancelled and the sequence leaves at once: its place and cells are free before the pick returns", async () => {
      const { ctx, loop, generate, assertNoPrivateCells } = setup();
      const firstPick = ctx.pausePick(1);
      const controller = new AbortController();
      const constrained = generate(range(20), 8, { grammar, signal: controller.signal });
      await firstPick.started;
      const seqId = constrained.seq.lease!.seqId;
      controller.abort();
      await assert.rejects(constrained.done, CancelledError);
      assert.ok(ctx.calls.includes(`cancel-pick ${seqId}`));
      await afterPendingCallbacks();
      assert.equal(loop.numRunning, 0);
      assertNoPrivateCells();
      assert.equal(ctx.picksInFlight, 1, "the pick is still held");
      // The next request is served meanwhile.
      assert.deepEqual(await generate(range(20, 300), 3).done, await alone(range(20, 300), 3));
      firstPick.resume();
    });

    test("a sequence preempted while its pick is in flight samples again when it runs again; the stale pick is dropped", async () => {
      const { ctx, generate, metrics, assertNoPrivateCells } = setup();
      const firstPick = ctx.pausePick(1);
      // Step 1 prefills the plain one, step 2 the constrained one (the newest), whose pick is
      // deferred; step 3 (the plain one's decode) finds no room, and the newest running
      // sequence is preempted; step 4 runs it again.
      ctx.faults.set(3, "no_room");
      const rerun = ctx.pause(4);
      const plain = generate(range(20), 6);
      const constrained = generate(range(20, 300), 4, { grammar });
      await firstPick.started;
      const seqId = constrained.seq.lease!.seqId;
      await rerun.started;
      assert.equal(constrained.seq.numPreemptions, 1);
      assert.equal(metrics.preemptions, 1);
      // Its sampler went before it ran again (which ends the first pick); a new one came.
      const pickAt = ctx.calls.indexOf(`pick ${seqId}`);
      assert.ok(ctx.calls.indexOf(`clear ${seqId}`, pickAt) > pickAt);
      assert.ok(ctx.calls.includes(`set ${constrained.seq.lease!.seqId}`, pickAt));
      rerun.resume();
      firstPick.resume();
      assert.deepEqual(await plain.done, await alone(range(20), 6));
      assert.deepEqual(await constrained.done, await alone(range(20, 300), 4));
      assertNoPrivateCells();
    });

    test("closing the loop with a pick in flight cancels it and waits for it; the context is disposed after", async () => {
      const { ctx, loop, executor, generate } = setup();
      const firstPick = ctx.pausePick(1);
      const constrained = generate(range(20), 8, { grammar });
      await firstPick.started;
      const seqId = constrained.seq.lease!.seqId;
      let closed = false;
      const closing = loop.close().then(() => (closed = true));
      await assert.rejects(constrained.done, CancelledError);
      assert.ok(ctx.calls.includes(`cancel-pick ${seqId}`));
      await afterPendingCallbacks();
      assert.equal(closed, false, "close waits for the pick");
      firstPick.resume();
      await closing;
      await executor.close();
      assert.equal(ctx.calls.at(-1), "dispose");
    });

    test("a failed pick fails only its sequence, with a typed error", async () => {
      const { ctx, generate, assertNoPrivateCells } = setup();
      const constrained = generate(range(20), 4, { grammar });
      const neighbour = generate(range(20, 300), 4);
      ctx.failPicks = nativeError("pick failed", "ERR_SAMPLE");
      await assert.rejects(constrained.done, (e: Error) => e instanceof InternalError && /pick failed/.test(e.message));
      assert.deepEqual(await neighbour.done, await alone(range(20, 300), 4));
      assertNoPrivateCells();
    });
  });
});
