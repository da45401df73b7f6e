// Greedy outputs compared across batch layouts. llama.cpp does not compute a sequence's logits
// bit for bit alike in every batch: the cells it sits in, the chunks its prompt is split into and
// the kernels picked for a batch's row count change the order of float sums. Where two tokens are
// nearly tied that flips the greedy choice: on a 2-core AMD EPYC with AVX-512 (ggml's zen4 CPU
// variant, 2026-12-02) a stories260K prompt alone chose " they" (-1.3685) over " she" (-1.3697)
// and beside 16 decoding sequences " she". Wrong positions or cells change far more than that.
import assert from "node:assert/strict";
import type { Logprob } from "../../src/api/ollama.js";

/** Largest logprob gap between the reference's token and the other's that counts as a tie. */
export const NEAR_TIE = 0.01;
/**
 * The same for Q8_0 weights: each activation row is rounded to 8 bits before the product, so a
 * float-order difference that moves a value across a rounding step moves it by a whole step. A
 * stories260K Q8_0 prompt alone chose " r" (-2.0798) over " b" (-2.1210) and beside 12 others
 * " b", with llama.cpp's own product and with the patched one alike (2026-12-02).
 */
export const NEAR_TIE_Q8_0 = 0.1;

/**
 * Asserts that `actual` equals the reference greedy output (its tokens with their top logprobs)
 * up to the first token where both choices were nearly tied in the reference; after such a flip
 * the texts may go apart.
 */
export function assertSameGreedy(actual: string, reference: { response: string; logprobs?: Logprob[] }, message: string, nearTie = NEAR_TIE): void {
  const tokens = reference.logprobs;
  assert.ok(tokens?.length, `${message}: the reference needs logprobs with top_logprobs`);
  let prefix = "";
  for (const chosen of tokens) {
    if (!actual.startsWith(prefix + chosen.token)) {
      const rest = actual.slice(prefix.length);
      const tie = chosen.top_logprobs?.find((t) => t.token !== chosen.token && t.token !== "" && rest.startsWith(t.token));
      assert.ok(actual.startsWith(prefix), `${message}: "${actual}" left the reference "${reference.response}" before a tie`);
      assert.ok(tie && chosen.logprob - tie.logprob <= nearTie,
        `${message}: "${actual}" differs from "${reference.response}" after "${prefix}" where the reference chose ${JSON.stringify(chosen.token)} ` +
        `(${chosen.logprob.toFixed(4)}) over ${tie ? `${JSON.stringify(tie.token)} (${tie.logprob.toFixed(4)})` : "no token the output has"}`);
      return;
    }
    prefix += chosen.token;
  }
  assert.equal(actual, reference.response, message);
}
