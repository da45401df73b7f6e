// The encoder cache: an image's rows computed once per content while kept, an encode in flight
// shared, failures not kept, least recently used images dropped past the row budget; across
// requests only with the prefix cache on.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EncoderCache } from "../../src/engine/encoder-cache.js";
import type { NativeMediaChunk } from "../../src/native/index.js";

function chunk(id: string, nTokens = 4): NativeMediaChunk {
  return { type: "image", id, nTokens, nPos: nTokens, nonCausal: false, positions: () => new Int32Array(nTokens) };
}

/** An encoder that counts its calls and answers rows filled with the call's number. */
function countingEncoder(fail: (id: string) => boolean = () => false) {
  const calls: string[] = [];
  const encode = async (c: NativeMediaChunk) => {
    calls.push(c.id);
    await new Promise((r) => setImmediate(r));
    if (fail(c.id)) throw new Error(`encode of ${c.id} failed`);
    return new Float32Array(c.nTokens * 2).fill(calls.length);
  };
  return { calls, encode };
}

describe("EncoderCache", () => {
  test("the same content twice, and twice at once, for other requests: encoded once, the same rows", async () => {
    const { calls, encode } = countingEncoder();
    const cache = new EncoderCache(encode, 100, true);
    const [a, b] = await Promise.all([cache.rows(chunk("x"), {}), cache.rows(chunk("x"), {})]);
    const c = await cache.rows(chunk("x"), {});
    assert.deepEqual(calls, ["x"]);
    assert.equal(cache.encodeCount, 1);
    assert.equal(a, b);
    assert.equal(a, c);
    await cache.rows(chunk("y"), {});
    assert.deepEqual(calls, ["x", "y"]);
  });

  test("a failed encode is not kept: the next request encodes again", async () => {
    let failing = true;
    const { calls, encode } = countingEncoder(() => failing);
    const cache = new EncoderCache(encode, 100, true);
    await assert.rejects(cache.rows(chunk("x"), {}), /encode of x failed/);
    failing = false;
    assert.equal((await cache.rows(chunk("x"), {})).length, 8);
    assert.deepEqual(calls, ["x", "x"]);
  });

  test("past the row budget the least recently used image goes; the newest stays even alone over it", async () => {
    const { calls, encode } = countingEncoder();
    const cache = new EncoderCache(encode, 8, true);
    await cache.rows(chunk("a"), {});
    await cache.rows(chunk("b"), {});
    await cache.rows(chunk("a"), {}); // a is now the most recently used
    await cache.rows(chunk("c"), {}); // 12 rows > 8: b goes
    await cache.rows(chunk("a"), {});
    await cache.rows(chunk("b"), {});
    assert.deepEqual(calls, ["a", "b", "c", "b"]);
    const big = new EncoderCache(encode, 2, true);
    await big.rows(chunk("huge", 10), {});
    await big.rows(chunk("huge", 10), {});
    assert.equal(big.encodeCount, 1);
  });

  test("a chunk without an id is never served from the cache", async () => {
    const { calls, encode } = countingEncoder();
    const cache = new EncoderCache(encode, 100, true);
    await cache.rows(chunk(""), {});
    await cache.rows(chunk(""), {});
    assert.deepEqual(calls, ["", ""]);
  });

  test("with the prefix cache off, each request encodes its image once: its own sequences share the rows, other requests do not", async () => {
    const { calls, encode } = countingEncoder();
    const cache = new EncoderCache(encode, 100, false);
    const request = {};
    const [a, b] = await Promise.all([cache.rows(chunk("x"), request), cache.rows(chunk("x"), request)]);
    assert.equal(a, b, "one request's choices (or a recompute) share the encode");
    const other = await cache.rows(chunk("x"), {});
    assert.notEqual(other, a);
    assert.deepEqual(calls, ["x", "x"]);
    assert.equal(cache.encodeCount, 2);
  });
});
