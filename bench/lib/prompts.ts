// Benchmark prompts of exact token lengths, built by tokenizing text and trimming it. Every
// prompt differs from its first word on (a seeded word shuffle), so no system under test gets a
// prefix-cache hit it was not meant to get; the shared-prefix suite shares a prefix on purpose.
import { loadModel, type NativeModel } from "../../src/native/index.js";
import type { BenchPrompt } from "./load.js";
import type { Backend } from "./suite.js";

const WORDS = (
  "the of and to in is was for on that with as by at from his her they this had not are but " +
  "one all were when we there can an which their said if will each about how up out them then " +
  "she many some so these would other into has more two time like see no way could people my " +
  "than first water been who its now find long down day did get come made may part over new " +
  "sound take only little work know place year live me back give most very after thing our " +
  "just name good sentence man think say great where help through much before line right too " +
  "mean old any same tell boy follow came want show also around form three small set put end " +
  "does another well large must big even such because turn here why ask went men read need " +
  "land different home us move try kind hand picture again change off play spell air away " +
  "animal house point page letter mother answer found study still learn should world high " +
  "every near add food between own below country plant last school father keep tree never " +
  "start city earth eye light thought head under story saw left few while along might close " +
  "something seem next hard open example begin life always those both paper together got group"
).split(" ");

/** A small seeded PRNG (mulberry32): the same seed gives the same prompts in every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomWords(seed: number, count: number): string {
  const next = prng(seed);
  return Array.from({ length: count }, () => WORDS[Math.floor(next() * WORDS.length)]).join(" ");
}

/** Tokens as vllama's raw generate path counts them: BOS added, special tokens parsed. */
function tokenize(model: NativeModel, text: string): number[] {
  return [...model.tokenize(text, true, true)];
}

/**
 * Text that tokenizes to exactly `length` tokens: words are added while they fit, then the text
 * is padded with one-token words. Throws if the vocabulary does not allow it.
 */
export function exactPrompt(model: NativeModel, seedText: string, length: number): BenchPrompt {
  // Fast path: cut the token list and check that the cut text tokenizes back to it.
  const cut = tokenize(model, seedText).slice(0, length);
  const cutText = model.detokenize(Int32Array.from(cut), true, false).trim();
  const again = tokenize(model, cutText);
  if (again.length === length) return { text: cutText, tokens: again };
  const words = seedText.split(" ");
  let text = "";
  for (const word of words) {
    const candidate = text ? `${text} ${word}` : word;
    if (tokenize(model, candidate).length > length) break;
    text = candidate;
  }
  for (const pad of ["a", "I", "the", "of"]) {
    while (tokenize(model, `${text} ${pad}`).length <= length) text = `${text} ${pad}`;
  }
  const tokens = tokenize(model, text);
  if (tokens.length !== length) throw new Error(`could not build a ${length}-token prompt (got ${tokens.length})`);
  return { text, tokens };
}

/** `count` distinct prompts of exactly `length` tokens; `salt` makes another run's set distinct. */
export function distinctPrompts(model: NativeModel, count: number, length: number, salt: number): BenchPrompt[] {
  return Array.from({ length: count }, (_, i) => exactPrompt(model, randomWords(salt * 100_003 + i, length * 2), length));
}

/**
 * Prompts sharing one ~`prefixLength`-token prefix, each ending with a short distinct question.
 * The prefix text is the same string in all of them, so its tokens are the same.
 */
export function sharedPrefixPrompts(model: NativeModel, count: number, prefixLength: number, salt: number): BenchPrompt[] {
  const prefix = exactPrompt(model, randomWords(salt * 7_919 + 1, prefixLength * 2), prefixLength).text;
  return Array.from({ length: count }, (_, i) => {
    const text = `${prefix}\nQuestion ${i + 1}: which word comes after "${WORDS[(salt + i * 7) % WORDS.length]}" in the text above?`;
    return { text, tokens: tokenize(model, text) };
  });
}

/** Loads the model (vllama's own addon, on the bench's backend), runs `fn` on its vocabulary, frees it. */
export async function withTokenizer<T>(modelPath: string, backend: Backend, fn: (model: NativeModel) => T): Promise<T> {
  const model = await loadModel(modelPath, { gpu: backend });
  try {
    return fn(model);
  } finally {
    await model.dispose();
  }
}
