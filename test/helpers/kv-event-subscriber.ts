// What llm-d's KV-event indexer does, written apart from the publisher: a ZeroMQ SUB socket that
// binds (the engine connects to it), speaks ZMTP 3.0 (subscribing with a 3.0 subscription
// message), takes three-frame messages (topic, sequence, payload), decodes the msgpack
// KVEventBatch and keeps the block set of each topic as the events build it.
import assert from "node:assert/strict";
import net from "node:net";

/** A msgpack decoder for what a KVEventBatch holds. */
function decodeMsgpack(data: Buffer): unknown {
  let at = 0;
  const uint = (size: number): bigint => {
    let v = 0n;
    for (let i = 0; i < size; i++) v = (v << 8n) | BigInt(data[at++]);
    return v;
  };
  const int = (size: number): bigint => BigInt.asIntN(size * 8, uint(size));
  const num = (v: bigint): number | bigint => (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
  const str = (n: number) => data.toString("utf8", at, (at += n));
  const arr = (n: number): unknown[] => Array.from({ length: n }, () => next());
  const next = (): unknown => {
    const b = data[at++];
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 256;
    if ((b & 0xe0) === 0xa0) return str(b & 0x1f);
    if ((b & 0xf0) === 0x90) return arr(b & 0x0f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xcb: return data.readDoubleBE((at += 8) - 8);
      case 0xcc: return num(uint(1));
      case 0xcd: return num(uint(2));
      case 0xce: return num(uint(4));
      case 0xcf: return num(uint(8));
      case 0xd0: return num(int(1));
      case 0xd1: return num(int(2));
      case 0xd2: return num(int(4));
      case 0xd3: return num(int(8));
      case 0xd9: return str(Number(uint(1)));
      case 0xda: return str(Number(uint(2)));
      case 0xdc: return arr(Number(uint(2)));
      case 0xdd: return arr(Number(uint(4)));
      default: throw new Error(`msgpack type 0x${b.toString(16)} not expected in a KV event batch`);
    }
  };
  const value = next();
  assert.equal(at, data.length, "trailing bytes after the batch");
  return value;
}

export interface StoredBlock {
  parent: bigint | null;
  tokens: number[];
}

export class KvEventSubscriber {
  /** Per topic: block hash -> what BlockStored said of it. */
  readonly blocks = new Map<string, Map<bigint, StoredBlock>>();
  readonly sequences: bigint[] = [];
  readonly tags = new Set<string>();
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  private constructor(readonly prefix: string) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  static async bind(prefix: string): Promise<KvEventSubscriber> {
    const s = new KvEventSubscriber(prefix);
    await new Promise<void>((resolve) => s.server.listen(0, "127.0.0.1", resolve));
    return s;
  }

  get endpoint(): string {
    return `tcp://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    const greeting = Buffer.alloc(64);
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting[11] = 0;
    greeting.write("NULL", 12, "ascii");
    const ready = Buffer.concat([Buffer.from([5]), Buffer.from("READY"), Buffer.from([11]), Buffer.from("Socket-Type"), Buffer.from([0, 0, 0, 3]), Buffer.from("SUB")]);
    const subscription = Buffer.concat([Buffer.from([1]), Buffer.from(this.prefix)]);
    socket.write(Buffer.concat([greeting, Buffer.from([0x04, ready.length]), ready, Buffer.from([0x00, subscription.length]), subscription]));
    let input = Buffer.alloc(0);
    let greeted = false;
    let frames: Buffer[] = [];
    socket.on("data", (chunk) => {
      input = Buffer.concat([input, chunk]);
      if (!greeted) {
        if (input.length < 64) return;
        assert.equal(input[0], 0xff);
        assert.equal(input.toString("ascii", 12, 16), "NULL");
        greeted = true;
        input = input.subarray(64);
      }
      for (;;) {
        if (input.length < 2) return;
        const flags = input[0];
        const head = flags & 0x02 ? 9 : 2;
        if (input.length < head) return;
        const size = flags & 0x02 ? Number(input.readBigUInt64BE(1)) : input[1];
        if (input.length < head + size) return;
        const body = input.subarray(head, head + size);
        input = input.subarray(head + size);
        if (flags & 0x04) {
          const name = body.toString("ascii", 1, 1 + body[0]);
          assert.equal(name, "READY");
          assert.match(body.toString("latin1"), /Socket-Type\0\0\0\x03PUB/);
          continue;
        }
        frames.push(Buffer.from(body));
        if (flags & 0x01) continue;
        this.message(frames);
        frames = [];
      }
    });
    socket.on("error", () => socket.destroy());
  }

  private message(frames: Buffer[]): void {
    assert.equal(frames.length, 3, "topic, sequence, payload");
    const topic = frames[0].toString("utf8");
    assert.ok(topic.startsWith(this.prefix));
    assert.equal(frames[1].length, 8);
    this.sequences.push(frames[1].readBigUInt64BE());
    const [ts, events] = decodeMsgpack(frames[2]) as [number, unknown[][]];
    assert.equal(typeof ts, "number");
    const blocks = this.blocks.get(topic) ?? new Map<bigint, StoredBlock>();
    this.blocks.set(topic, blocks);
    for (const [tag, ...fields] of events) {
      this.tags.add(tag as string);
      const hashes = () => (fields[0] as (number | bigint)[]).map(BigInt);
      if (tag === "BlockStored") {
        const [, parent, tokens, blockSize, loraId] = fields;
        assert.equal(fields.length, 5);
        assert.equal(loraId, null);
        assert.equal((tokens as number[]).length, blockSize);
        for (const hash of hashes()) blocks.set(hash, { parent: parent === null ? null : BigInt(parent as number), tokens: tokens as number[] });
      } else if (tag === "BlockRemoved") {
        for (const hash of hashes()) assert.ok(blocks.delete(hash), `removed block ${hash} was never stored`);
      } else if (tag === "AllBlocksCleared") {
        blocks.clear();
      } else {
        assert.fail(`unknown event ${String(tag)}`);
      }
    }
  }
}
