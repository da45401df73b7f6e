// The executor runs a StepPlan: the only code that calls the native context. It applies the
// plan's cache operations, drops and installs samplers, turns the plan into the typed arrays of
// native batches, and hands back what was sampled, per sequence, and which sequences' picks the
// grammar deferred (it refused the sampler's choice), which `pick` then makes off the step. It
// decides nothing about which tokens run, only how the backend runs them best. Images' rows are
// their own batch, after the plan's tokens: the projector computes each image (the encoder pass,
// one after another on the step's cores), then one llama_decode of embeddings puts every image's
// rows of the step in their sequences' cells.
import type { VllamaError } from "../api/errors.js";
import { toTypedError, type NativeContext, type SampledArrays } from "../native/index.js";
import type { MediaRows } from "./encoder-cache.js";
import { mediaSpanAt, positionAt, rowPositions } from "./media.js";
import type { Batch, PlanEntry, ScheduledSequence, StepPlan } from "./scheduler.js";

// llama.cpp's CPU flash attention runs a batch of 64 rows or more in 64-row query tiles, and
// computes a tile densely over every cache cell any of its rows may see. Single-token rows of
// many sequences (decode) in one tile make it dense over nearly the whole cache: a 512-token
// step with 32 decode rows beside a prompt chunk took 1.68 s mixed, 1.52 s as two batches.
// Alone, under 64 rows, they take the per-row path that skips other sequences' cells. The
// extra batch costs one more pass over the weights, which pays from a few sequences on.
const ATTENTION_TILE_ROWS = 64;
const MIN_SEPARATE_DECODE_ROWS = 8;

/** What the executor uses of the native context (tests pass a fake). */
export type StepContext = Pick<
  NativeContext,
  "batchCapacity" | "nUbatch" | "setSampler" | "clearSampler" | "acceptTokens" | "step" | "pickDeferred" | "cancelPick" | "decodeEmbeddings" | "seqRemove" | "seqCopy" | "dispose"
>;

export interface SampledRow<S extends ScheduledSequence> {
  seq: S;
  token: number;
  logprob: number;
  top: Array<{ id: number; logprob: number }>;
}

/** `deferred`: sequences whose grammar refused the sampler's choice; their token comes from `pick`. */
export type StepOutcome<S extends ScheduledSequence> =
  | { status: "ok"; rows: SampledRow<S>[]; deferred: S[]; decodeNs: number; sampleNs: number }
  | { status: "no_room" }
  /** The native step failed: nothing of the batch is known to be in the cache. */
  | { status: "failed"; error: VllamaError };

/** `rows`: the picked tokens, without the sequences whose pick was cancelled. */
export type PickOutcome<S extends ScheduledSequence> =
  | { status: "ok"; rows: SampledRow<S>[] }
  | { status: "failed"; error: VllamaError };

/** A sequence whose sampler the native context refused (a grammar it cannot parse, say). */
export interface AdmissionFailure<S extends ScheduledSequence> {
  seq: S;
  error: VllamaError;
}

/** What the step loop needs of an executor (tests pass a fake). */
export interface StepExecutor<S extends ScheduledSequence> {
  /**
   * Applies what must precede the plan's tokens, in order: its cache operations, the released
   * samplers, the admitted sequences' samplers (with their prompt and replayed tokens).
   */
  prepare(plan: StepPlan<S>): AdmissionFailure<S>[];
  /** The plan as batches to run one after another. */
  batches(plan: StepPlan<S>): Batch<S>[];
  run(batch: Batch<S>): Promise<StepOutcome<S>>;
  /** The deferred picks of these sequences (one call at a time; steps may run meanwhile). */
  pick(seqs: S[]): Promise<PickOutcome<S>>;
  /** Ends the sequence's deferred pick at once (it gets no token); allowed while a step runs. */
  cancelPick(seq: S): void;
  close(): Promise<void>;
}

export class Executor<S extends ScheduledSequence> implements StepExecutor<S> {
  // Reused across steps: a step allocates nothing per token on the JS side.
  private readonly tokens: Int32Array;
  private readonly positions: Int32Array;
  private readonly seqIds: Int32Array;
  private readonly sample: Uint8Array;

  /**
   * `cpuAttention`: attention runs on the CPU backend (the tiling above is the CPU kernel's;
   * GPU kernels were not measured, so their batches stay whole).
   */
  constructor(
    private readonly ctx: StepContext,
    private readonly cpuAttention: boolean,
    /** The model's projector (through its encoder cache), when it has one. */
    private readonly encode?: MediaRows,
  ) {
    this.tokens = new Int32Array(ctx.batchCapacity);
    this.positions = new Int32Array(ctx.batchCapacity);
    this.seqIds = new Int32Array(ctx.batchCapacity);
    this.sample = new Uint8Array(ctx.batchCapacity);
  }

  prepare(plan: StepPlan<S>): AdmissionFailure<S>[] {
    for (const op of plan.cacheOps) {
      if (op.kind === "copy") this.ctx.seqCopy(op.src, op.dst, op.p0, op.p1);
      else this.ctx.seqRemove(op.seqId, op.p0, op.p1);
    }
    for (const seqId of plan.releasedSeqIds) this.ctx.clearSampler(seqId);
    const failures: AdmissionFailure<S>[] = [];
    for (const a of plan.admissions) {
      try {
        this.ctx.setSampler(a.seqId, a.sampler);
        if (a.promptTokens.length > 0) this.ctx.acceptTokens(a.seqId, a.promptTokens, false);
        // After a preemption, the generated tokens replay into the grammar and penalty window.
        if (a.generatedTokens.length > 0) this.ctx.acceptTokens(a.seqId, a.generatedTokens, true);
      } catch (error) {
        this.ctx.clearSampler(a.seqId);
        failures.push({ seq: a.seq, error: toTypedError(error) });
      }
    }
    return failures;
  }

  /** The plan's tokens (on the CPU its decode rows first, see ATTENTION_TILE_ROWS), then its images' rows (mediaBatches). */
  batches(plan: StepPlan<S>): Batch<S>[] {
    const media = plan.entries.filter(isMediaEntry);
    if (media.length === 0) return this.tokenBatches(plan);
    const tokens = batchOf(plan.entries.filter((e) => !isMediaEntry(e)));
    return [...(tokens.entries.length > 0 ? this.tokenBatches(tokens) : []), ...this.mediaBatches(media)];
  }

  async run(batch: Batch<S>): Promise<StepOutcome<S>> {
    if (isMediaEntry(batch.entries[0])) return this.runMedia(batch);
    let n = 0;
    for (const e of batch.entries) {
      const seqId = e.seq.lease!.seqId;
      // A token entry holds no image rows (fitToMedia), so its positions run on from its first,
      // which is its index only before an M-RoPE image. One position a token, M-RoPE too: llama.cpp
      // gives a token all four (llama_batch_allocr::ubatch_add), as mtmd_helper_eval_chunks does.
      const pos0 = positionAt(e.seq.media, e.start);
      for (let i = 0; i < e.count; i++, n++) {
        this.tokens[n] = e.seq.tokens[e.start + i];
        this.positions[n] = pos0 + i;
        this.seqIds[n] = seqId;
        this.sample[n] = 0;
      }
      if (e.sample) this.sample[n - 1] = 1;
    }
    let result;
    try {
      result = await this.ctx.step({
        tokens: this.tokens.subarray(0, n),
        positions: this.positions.subarray(0, n),
        seqIds: this.seqIds.subarray(0, n),
        sample: this.sample.subarray(0, n),
      });
    } catch (error) {
      return { status: "failed", error: toTypedError(error) };
    }
    if (result.status === "no_room") return { status: "no_room" };
    const sampled = batch.entries.filter((e) => e.sample).map((e) => e.seq);
    return { status: "ok", ...sampledRows(sampled, result), decodeNs: result.decodeNs, sampleNs: result.sampleNs };
  }

  async pick(seqs: S[]): Promise<PickOutcome<S>> {
    try {
      const result = await this.ctx.pickDeferred(Int32Array.from(seqs, (seq) => seq.lease!.seqId));
      // A cancelled pick's -1 is no token: that sequence is gone.
      return { status: "ok", rows: sampledRows(seqs, result).rows };
    } catch (error) {
      return { status: "failed", error: toTypedError(error) };
    }
  }

  cancelPick(seq: S): void {
    if (seq.lease) this.ctx.cancelPick(seq.lease.seqId);
  }

  private tokenBatches(batch: Batch<S>): Batch<S>[] {
    if (!this.cpuAttention || batch.numTokens < ATTENTION_TILE_ROWS) return [batch];
    const single = batch.entries.filter((e) => e.count === 1);
    if (single.length < MIN_SEPARATE_DECODE_ROWS || single.length >= ATTENTION_TILE_ROWS) return [batch];
    const chunks = batch.entries.filter((e) => e.count > 1);
    if (chunks.length === 0) return [batch];
    return [batchOf(single), batchOf(chunks)];
  }

  /**
   * The plan's image rows in as few llama_decode calls as hold them: each call passes over the
   * weights once, and a step may hold many images' rows (a burst sharing one image: 32
   * sequences each computing the rows of its last, partial block, 7 rows each on llama110m-vision,
   * were 31 calls of one step). Rows attended both ways go apart from the others (the attention
   * mode is one per call) and fit one micro-batch.
   */
  private mediaBatches(entries: PlanEntry<S>[]): Batch<S>[] {
    const batches: Batch<S>[] = [];
    for (const nonCausal of [false, true]) {
      const limit = nonCausal ? this.ctx.nUbatch : this.ctx.batchCapacity;
      let open: PlanEntry<S>[] = [];
      let rows = 0;
      for (const e of entries.filter((x) => mediaSpanAt(x.seq.media, x.start)!.chunk.nonCausal === nonCausal)) {
        if (open.length > 0 && rows + e.count > limit) {
          batches.push(batchOf(open));
          open = [];
          rows = 0;
        }
        open.push(e);
        rows += e.count;
      }
      if (open.length > 0) batches.push(batchOf(open));
    }
    return batches;
  }

  /**
   * Images' rows (the rest of them, when the prefix cache held their first ones): each encoded by
   * the projector (or taken from its encoder cache, encoder-cache.ts), then all decoded into
   * their sequences in one call. An encode that fails fails the batch's sequences, as a failed
   * decode does.
   */
  private async runMedia(batch: Batch<S>): Promise<StepOutcome<S>> {
    try {
      const rows: EntryRows[] = [];
      // One encode at a time: the projector computes on the cores the steps use.
      for (const e of batch.entries) rows.push(await this.entryRows(e));
      const result = await this.ctx.decodeEmbeddings({
        ...joinRows(rows),
        nonCausal: mediaSpanAt(batch.entries[0].seq.media, batch.entries[0].start)!.chunk.nonCausal,
      });
      if (result.status === "no_room") return { status: "no_room" };
      return { status: "ok", rows: [], deferred: [], decodeNs: result.decodeNs, sampleNs: 0 };
    } catch (error) {
      return { status: "failed", error: toTypedError(error) };
    }
  }

  /** One entry's embedding rows and their positions. */
  private async entryRows(e: PlanEntry<S>): Promise<EntryRows> {
    if (!this.encode) throw new Error("this model has no projector for its images");
    const span = mediaSpanAt(e.seq.media, e.start)!;
    const offset = e.start - span.start;
    const rows = await this.encode(span.chunk, e.seq.promptGroup ?? e.seq);
    const width = rows.length / span.chunk.nTokens;
    return {
      seqId: e.seq.lease!.seqId,
      count: e.count,
      embeddings: rows.subarray(offset * width, (offset + e.count) * width),
      positions: rowPositions(e.seq.media!, span, offset, e.count),
    };
  }

  close(): Promise<void> {
    return this.ctx.dispose();
  }
}

function isMediaEntry<S extends ScheduledSequence>(e: PlanEntry<S>): boolean {
  return mediaSpanAt(e.seq.media, e.start) !== undefined;
}

interface EntryRows {
  seqId: number;
  count: number;
  embeddings: Float32Array;
  /** count positions, or with M-RoPE 4 x count, dimension-major. */
  positions: Int32Array;
}

/** Entries' rows as one call's arrays: rows in entry order, positions dimension-major over all rows. */
function joinRows(parts: EntryRows[]): { seqIds: Int32Array; embeddings: Float32Array; positions: Int32Array } {
  const n = parts.reduce((sum, p) => sum + p.count, 0);
  const dimensions = parts[0].positions.length / parts[0].count;
  const seqIds = new Int32Array(n);
  const embeddings = new Float32Array(parts.reduce((sum, p) => sum + p.embeddings.length, 0));
  const positions = new Int32Array(dimensions * n);
  let row = 0;
  let float = 0;
  for (const p of parts) {
    seqIds.fill(p.seqId, row, row + p.count);
    embeddings.set(p.embeddings, float);
    for (let d = 0; d < dimensions; d++) positions.set(p.positions.subarray(d * p.count, (d + 1) * p.count), d * n + row);
    row += p.count;
    float += p.embeddings.length;
  }
  return { seqIds, embeddings, positions };
}

function batchOf<S extends ScheduledSequence>(entries: Batch<S>["entries"]): Batch<S> {
  return { entries, numTokens: entries.reduce((sum, e) => sum + e.count, 0) };
}

// Sampled rows come back in the order asked (a batch's entries that sample, a pick's
// sequences); token -1 is a pick the grammar deferred.
function sampledRows<S extends ScheduledSequence>(seqs: S[], result: SampledArrays): { rows: SampledRow<S>[]; deferred: S[] } {
  const rows: SampledRow<S>[] = [];
  const deferred: S[] = [];
  seqs.forEach((seq, r) => {
    const token = result.sampledTokens[r];
    if (token < 0) {
      deferred.push(seq);
      return;
    }
    const top: SampledRow<S>["top"] = [];
    for (let k = 0; k < result.topN; k++) {
      const id = result.topIds[r * result.topN + k];
      if (id >= 0) top.push({ id, logprob: result.topLogprobs[r * result.topN + k] });
    }
    rows.push({ seq, token, logprob: result.sampledLogprobs[r], top });
  });
  return { rows, deferred };
}
