// Several choices from one OpenAI request (`n`, and a list of prompts on /v1/completions): each
// choice is its own engine sequence, all submitted at once so the engine batches them. Choices
// of one prompt share its computed cells (one RequestInit.promptGroup, so with the prefix cache
// off too): the scheduler holds back a sequence whose prompt another sequence is prefilling and
// attaches it to that prefix once cached (a sequence copy in the KV manager's cache operations),
// so the prompt is computed once, its last partial block aside. Choice i of a prompt samples
// with seed + i, so each is reproducible and they differ.
import type { Options } from "../api/ollama.js";

/** Choice `index` of the request: prompt `Math.floor(index / n)`, sample `index % n`. */
export interface Choice<R> {
  index: number;
  request: R;
  /** The same object for every choice of one prompt. */
  promptGroup: object;
}

/** `n` choices of each request, in OpenAI's order (all of the first prompt's, then the next's). */
export function choicesOf<R extends { options?: Options }>(requests: readonly R[], n: number): Choice<R>[] {
  return requests.flatMap((request, p) => {
    const promptGroup = {};
    return Array.from({ length: n }, (_, i) => ({ index: p * n + i, request: withSeedOffset(request, i), promptGroup }));
  });
}

function withSeedOffset<R extends { options?: Options }>(request: R, offset: number): R {
  const seed = request.options?.seed;
  if (offset === 0 || seed === undefined || seed < 0) return request;
  return { ...request, options: { ...request.options, seed: seed + offset } };
}

/** The started choices, and how to cancel those still running (the client's signal does too). */
export interface Started<T> {
  results: T[];
  cancel: () => void;
}

/**
 * Starts every choice under one signal: if one fails (a bad request, a full queue), the others
 * are cancelled and its error is the request's.
 */
export async function startAll<R, T>(
  choices: readonly Choice<R>[],
  start: (request: R, init: { signal: AbortSignal; promptGroup: object }) => Promise<T>,
  signal: AbortSignal,
): Promise<Started<T>> {
  const all = new AbortController();
  const cancel = () => all.abort(signal.reason);
  if (signal.aborted) cancel();
  signal.addEventListener("abort", cancel, { once: true });
  // The first failure cancels the rest at once (a full queue must not wait for their answers).
  let failure: { error: unknown } | undefined;
  const settled = await Promise.allSettled(choices.map((c) => start(c.request, { signal: all.signal, promptGroup: c.promptGroup }).catch((error: unknown) => {
    failure ??= { error };
    cancel();
    throw error;
  })));
  if (failure) throw failure.error;
  return { results: settled.map((s) => (s as PromiseFulfilledResult<T>).value), cancel };
}

/**
 * The items of several streams as each arrives. An error in one ends the merge with it, and a
 * merge that ends early (an error, a client that left) calls `stop` for the streams still open.
 */
export async function* mergeStreams<T>(streams: readonly AsyncIterable<T>[], stop: () => void): AsyncGenerator<T> {
  const iterators = streams.map((s) => s[Symbol.asyncIterator]());
  const next = (i: number) => iterators[i]!.next().then((result) => ({ i, result }));
  const pending = new Map(iterators.map((_, i) => [i, next(i)]));
  try {
    while (pending.size > 0) {
      const { i, result } = await Promise.race(pending.values());
      if (result.done) {
        pending.delete(i);
        continue;
      }
      pending.set(i, next(i));
      yield result.value;
    }
  } finally {
    if (pending.size > 0) stop();
    // What the streams left running still settles; nobody awaits it now.
    for (const p of pending.values()) p.catch(() => {});
  }
}
