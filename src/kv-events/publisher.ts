// The prefix cache's block events in vLLM's KV-event format, so that llm-d's precise
// prefix-cache scorer can route a request to the replica that already holds its prefix.
// Wire format (vLLM's ZmqEventPublisher): a ZeroMQ PUB message of three frames, the topic
// `kv@<pod>@<model>` (what llm-d's subscriber splits to learn the pod and the model), an 8-byte
// big-endian sequence number, and a msgpack KVEventBatch `[ts, [event, ...]]` whose events are
// msgspec's array-like tagged structs:
//   ["BlockStored", [hash], parent_hash | nil, token_ids, block_size, lora_id (nil)]
//   ["BlockRemoved", [hash]]
//   ["AllBlocksCleared"]
// Events of one turn of the event loop (one engine step) go out as one batch.
import { blockHash, rootBlockHash } from "./block-hash.js";
import { encodeMsgpack, Float64, type MsgpackValue } from "./msgpack.js";
import { ZmtpPublisher } from "./zmtp-pub.js";

const ROOT_HASH = rootBlockHash();

/** The events of one model's prefix cache (what the KV manager reports). */
export interface ModelKvEvents {
  /** Hash of a block, from its parent's hash (undefined: the first block) and its tokens. */
  hash(parent: bigint | undefined, tokens: ArrayLike<number>): bigint;
  stored(hash: bigint, parent: bigint | undefined, tokens: ArrayLike<number>): void;
  removed(hash: bigint): void;
  cleared(): void;
}

export class KvEventPublisher {
  private sequence = 0n;
  private readonly pending = new Map<string, MsgpackValue[]>();
  private flushing = false;

  private constructor(
    private readonly socket: ZmtpPublisher,
    private readonly pod: string,
    private readonly blockSize: number,
  ) {}

  /** Binds (`tcp://*:PORT`) or connects (`tcp://HOST:PORT`, as llm-d's indexer expects). */
  static async open(endpoint: string, pod: string, blockSize: number): Promise<KvEventPublisher> {
    return new KvEventPublisher(await ZmtpPublisher.open(endpoint), pod, blockSize);
  }

  get port(): number {
    return this.socket.port;
  }

  forModel(model: string): ModelKvEvents {
    const topic = `kv@${this.pod}@${model}`;
    return {
      hash: (parent, tokens) => blockHash(parent ?? ROOT_HASH, tokens),
      stored: (hash, parent, tokens) =>
        this.add(topic, ["BlockStored", [hash], parent ?? null, Array.from(tokens), this.blockSize, null]),
      removed: (hash) => this.add(topic, ["BlockRemoved", [hash]]),
      cleared: () => this.add(topic, ["AllBlocksCleared"]),
    };
  }

  async close(): Promise<void> {
    this.flush();
    await this.socket.close();
  }

  private add(topic: string, event: MsgpackValue[]): void {
    const events = this.pending.get(topic) ?? [];
    events.push(event);
    this.pending.set(topic, events);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushing = false;
    for (const [topic, events] of this.pending) {
      const sequence = Buffer.alloc(8);
      sequence.writeBigUInt64BE(this.sequence++);
      this.socket.send([Buffer.from(topic, "utf8"), sequence, encodeMsgpack([new Float64(Date.now() / 1000), events])]);
    }
    this.pending.clear();
  }
}
