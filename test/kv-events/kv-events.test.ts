// The prefix cache's block events in vLLM's KV-event format (msgpack over ZeroMQ PUB), read by a
// subscriber that rebuilds the cache's block set the way llm-d's indexer does, compared with the
// engine's own cache; block hashes checked against an independent CBOR + SHA-256 computation.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Engine } from "../../src/engine/engine.js";
import { BLOCK_SIZE } from "../../src/engine/kv-manager.js";
import { blockHash, rootBlockHash } from "../../src/kv-events/block-hash.js";
import { parseTcpEndpoint } from "../../src/kv-events/zmtp-pub.js";
import { KvEventSubscriber } from "../helpers/kv-event-subscriber.js";
import { storiesPath } from "../helpers/models.js";

describe("KV events: block hashes", () => {
  test("match llm-d's and vLLM's sha256_cbor_64bit chain", () => {
    // Computed with Python's cbor2 (canonical=True) and hashlib: low 64 bits of SHA-256.
    const root = rootBlockHash();
    assert.equal(root, 780114917913990099n);
    const first = blockHash(root, Array.from({ length: 16 }, (_, i) => i));
    assert.equal(first, 11338012631650408282n);
    assert.equal(blockHash(first, [1, 300, 70000, 4000000000, ...Array(12).fill(7)]), 13560401256827307034n);
  });

  test("endpoints: tcp://*:PORT binds, tcp://HOST:PORT connects, anything else is refused", () => {
    assert.deepEqual(parseTcpEndpoint("tcp://*:5557"), { host: "0.0.0.0", port: 5557, bind: true });
    assert.deepEqual(parseTcpEndpoint("tcp://indexer.llm-d:5557"), { host: "indexer.llm-d", port: 5557, bind: false });
    assert.deepEqual(parseTcpEndpoint("tcp://[::1]:9"), { host: "::1", port: 9, bind: false });
    for (const bad of ["ipc:///tmp/kv", "tcp://host", "host:5557", "tcp://host:70000"]) assert.throws(() => parseTcpEndpoint(bad), /not a tcp:\/\/host:port/);
  });
});

describe("KV events: a subscriber rebuilds the engine's prefix cache", () => {
  let subscriber: KvEventSubscriber;
  let engine: Engine;
  const topic = `kv@test-pod@${storiesPath}`;
  // 40 tokens of shared system text: two full blocks every request below shares.
  const system = "Once upon a time there was a little girl named Lily. She loved to play outside in the park with her friends every day.";

  before(async () => {
    subscriber = await KvEventSubscriber.bind("kv@");
    engine = new Engine({
      modelsDir: mkdtempSync(path.join(os.tmpdir(), "vllama-kv-events-")), parallel: 16, kvCells: 1024,
      kvEventsEndpoint: subscriber.endpoint, kvEventsPod: "test-pod",
    });
  });
  after(async () => {
    await engine.close();
    await subscriber.close();
  });

  const generate = (prompt: string) => engine.generate({ model: storiesPath, prompt, stream: false, options: { temperature: 0, num_predict: 24 } });
  const subscribed = () => subscriber.blocks.get(topic) ?? new Map();
  async function settled(expected: () => number): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (subscribed().size !== expected() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  test("stored and removed events keep the subscriber's block set equal to the engine's", async () => {
    const answers = await Promise.all(Array.from({ length: 15 }, (_, i) => generate(`${system} Story ${i}:`)));
    // More rounds in a small cache: idle blocks are evicted (BlockRemoved) as new ones are stored.
    for (let round = 0; round < 3; round++) answers.push(...(await Promise.all(Array.from({ length: 8 }, (_, i) => generate(`${system} Round ${round} tale ${i}:`)))));
    const cached = () => engine.stats()[0].kv.cachedBlocks;
    await settled(cached);
    const blocks = subscribed();
    assert.ok(cached() > 0);
    assert.equal(blocks.size, cached(), "the subscriber holds as many blocks as the engine's prefix cache");
    assert.ok(subscriber.tags.has("BlockStored") && subscriber.tags.has("BlockRemoved"), [...subscriber.tags].join());
    // Each block's hash is the router's own hash of its tokens, and its parent is still cached
    // (children leave before their parents).
    for (const [hash, block] of blocks) {
      assert.equal(block.tokens.length, BLOCK_SIZE);
      assert.equal(blockHash(block.parent ?? rootBlockHash(), block.tokens), hash);
      if (block.parent !== null) assert.ok(blocks.has(block.parent), "parent of a cached block is cached");
    }
    // A router hashing the last request's tokens finds its whole computed prefix here.
    const last = answers.at(-1)!;
    const computed = last.context!.slice(0, -1);
    let parent = rootBlockHash();
    for (let start = 0; start + BLOCK_SIZE <= computed.length; start += BLOCK_SIZE) {
      parent = blockHash(parent, computed.slice(start, start + BLOCK_SIZE));
      assert.ok(blocks.has(parent), `block ${start / BLOCK_SIZE} of the last request`);
    }
    subscriber.sequences.forEach((s, i) => assert.equal(s, BigInt(i), "sequence numbers count batches from 0"));
  });

  test("unloading the model clears every block (AllBlocksCleared)", async () => {
    await engine.generate({ model: storiesPath, prompt: "", keep_alive: 0, stream: false });
    await settled(() => 0);
    assert.ok(subscriber.tags.has("AllBlocksCleared"));
    assert.equal(subscribed().size, 0);
  });
});
