// One generation request as the step loop sees it: its tokens, sampling, stop conditions, and
// the stream of text pieces it produces.
import type { SamplerParams } from "../native/index.js";
import { AsyncQueue } from "../util/async-queue.js";
import { isMediaPlaceholder, type MediaSpan } from "./media.js";
import type { ScheduledSequence } from "./scheduler.js";
import { StopStringMatcher } from "./stop-strings.js";

export interface TokenLogprobs {
  token: string;
  logprob: number;
  bytes: number[];
  top: Array<{ token: string; logprob: number; bytes: number[] }>;
}

export type SequenceEvent =
  | { type: "text"; text: string; logprobs: TokenLogprobs[] }
  /** `stopSequence`: the stop string that ended the sequence, when one did. */
  | { type: "done"; reason: "stop" | "length"; stats: SequenceStats; stopSequence?: string };

export interface SequenceStats {
  promptTokens: number;
  generatedTokens: number;
  /** All tokens of the sequence (prompt + generated), for Ollama's `context`. */
  tokens: number[];
  /** Nanosecond timestamps (process.hrtime.bigint()). */
  queuedAt: bigint;
  firstTokenAt: bigint;
  finishedAt: bigint;
  numPreemptions: number;
}

export interface SequenceLimits {
  /** Tokens to generate at most; -1 = until EOS or the context limit. */
  maxTokens: number;
  /** Most tokens (prompt + generated) the sequence may hold: `num_ctx`. */
  maxContext: number;
  stop: string[];
  ignoreEos: boolean;
}

/** What a sequence needs from its model to turn tokens into text. */
export interface Vocabulary {
  tokenBytes(token: number, special: boolean): Uint8Array;
  isEog(token: number): boolean;
}

let nextSequenceId = 1;

export class Sequence implements ScheduledSequence {
  readonly id = nextSequenceId++;
  tokens: number[];
  numComputed = 0;
  lease: ScheduledSequence["lease"];
  numPreemptions = 0;
  readonly events = new AsyncQueue<SequenceEvent>();
  readonly promptLength: number;
  finished = false;
  finishReason: "stop" | "length" | undefined;
  private readonly decoder = new TextDecoder("utf-8");
  private readonly stopMatcher: StopStringMatcher;
  readonly queuedAt = process.hrtime.bigint();
  /** When the sequence first started running (prompt evaluation began). */
  admittedAt: bigint | undefined;
  private firstTokenAt = 0n;
  private pendingLogprobs: TokenLogprobs[] = [];

  constructor(
    prompt: number[],
    readonly sampler: SamplerParams,
    private readonly limits: SequenceLimits,
    private readonly vocab: Vocabulary,
    /** The prompt's images (their rows hold placeholders in `prompt`). */
    readonly media: readonly MediaSpan[] = [],
    /** Shared with the other choices of its request (RequestInit.promptGroup). */
    readonly promptGroup?: object,
  ) {
    this.tokens = [...prompt];
    this.promptLength = prompt.length;
    this.stopMatcher = new StopStringMatcher(limits.stop);
  }

  get generatedCount(): number {
    return this.tokens.length - this.promptLength;
  }

  /** Called when the sequence starts running (again, after a preemption). */
  noteAdmitted(): void {
    this.admittedAt ??= process.hrtime.bigint();
  }

  /** A token was sampled for this sequence. Returns true when the sequence is finished. */
  accept(token: number, logprobs: TokenLogprobs | undefined): boolean {
    if (this.finished) return true;
    if (this.firstTokenAt === 0n) this.firstTokenAt = process.hrtime.bigint();
    if (!this.limits.ignoreEos && this.vocab.isEog(token)) return this.finish("stop");
    this.tokens.push(token);
    if (logprobs) this.pendingLogprobs.push(logprobs);
    const { emit, stoppedBy } = this.stopMatcher.push(this.decoder.decode(this.vocab.tokenBytes(token, false), { stream: true }));
    this.emitText(emit);
    if (stoppedBy !== undefined) return this.finish("stop", stoppedBy);
    if (this.limits.maxTokens >= 0 && this.generatedCount >= this.limits.maxTokens) return this.finish("length");
    if (this.tokens.length >= this.limits.maxContext) return this.finish("length");
    return false;
  }

  /** Ends the stream with an error (the request fails; nothing else is affected). */
  fail(error: unknown): void {
    this.finished = true;
    this.events.fail(error);
  }

  private emitText(text: string): void {
    if (text.length === 0 && this.pendingLogprobs.length === 0) return;
    this.events.push({ type: "text", text, logprobs: this.pendingLogprobs });
    this.pendingLogprobs = [];
  }

  private finish(reason: "stop" | "length", stopSequence?: string): true {
    // Text held back as a possible stop-string start, or an unfinished UTF-8 character, is
    // emitted now (after a stop-string match nothing is held).
    this.emitText(this.decoder.decode() + this.stopMatcher.flush());
    this.finished = true;
    this.finishReason = reason;
    const now = process.hrtime.bigint();
    this.events.push({
      type: "done",
      reason,
      stats: {
        promptTokens: this.promptLength,
        generatedTokens: this.generatedCount,
        // An image's rows are no tokens to send back (Ollama's `context` holds none either).
        tokens: this.media.length > 0 ? this.tokens.filter((t) => !isMediaPlaceholder(t)) : this.tokens,
        queuedAt: this.queuedAt,
        firstTokenAt: this.firstTokenAt || now,
        finishedAt: now,
        numPreemptions: this.numPreemptions,
      },
      ...(stopSequence !== undefined ? { stopSequence } : {}),
    });
    this.events.end();
    return true;
  }
}
