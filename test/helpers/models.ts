// Models the tests run on: the real trained stories260K kept in models/, and its greedy
// reference output from llama.cpp's own server (models/README.md).
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const storiesPath = path.resolve(repoRoot, "models/stories260K.gguf");
/** The same model quantized to Q8_0 by llama.cpp's llama-quantize (models/README.md); same greedy reference text. */
export const storiesQ8Path = path.resolve(repoRoot, "models/stories260K-q8_0.gguf");
export const REFERENCE_PROMPT = "Once upon a time";
export const REFERENCE_TEXT =
  ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it,";
/** Prompts of other lengths that share batches with the reference prompt. */
export const OTHER_PROMPTS = [
  "The cat", "Lily and Tom went", "One day a dog", "The sun was", "A little bird sang", "Tim had a red",
  "Mom said", "There was a big tree", "Sue wanted to", "The boy ran", "Ben and his friend", "It was a sunny day",
  "The little fish", "Anna found a box", "The bunny hopped",
];
