// MessagePack encoding of the values vLLM's KV events carry (nil, integers up to 64 bits,
// float64, strings, arrays): the wire format llm-d's indexer decodes.

/** A number always written as float64 (msgspec writes a float field as float64 even when whole). */
export class Float64 {
  constructor(readonly value: number) {}
}

export type MsgpackValue = null | boolean | number | bigint | string | Float64 | MsgpackValue[];

class Writer {
  private buffer = Buffer.alloc(256);
  private length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + n));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  byte(b: number): void {
    this.room(1);
    this.buffer[this.length++] = b;
  }

  bytes(data: Uint8Array): void {
    this.room(data.length);
    this.buffer.set(data, this.length);
    this.length += data.length;
  }

  /** A type byte followed by a big-endian unsigned value of `size` bytes. */
  typed(type: number, value: bigint, size: number): void {
    this.byte(type);
    for (let shift = BigInt((size - 1) * 8); shift >= 0n; shift -= 8n) this.byte(Number((value >> shift) & 0xffn));
  }

  result(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

function writeInteger(w: Writer, v: bigint): void {
  if (v >= 0n) {
    if (v < 128n) w.byte(Number(v));
    else if (v < 1n << 8n) w.typed(0xcc, v, 1);
    else if (v < 1n << 16n) w.typed(0xcd, v, 2);
    else if (v < 1n << 32n) w.typed(0xce, v, 4);
    else if (v < 1n << 64n) w.typed(0xcf, v, 8);
    else throw new RangeError(`msgpack: ${v} is over 64 bits`);
  } else {
    if (v >= -32n) w.byte(Number(v) & 0xff);
    else if (v >= -(1n << 7n)) w.typed(0xd0, BigInt.asUintN(8, v), 1);
    else if (v >= -(1n << 15n)) w.typed(0xd1, BigInt.asUintN(16, v), 2);
    else if (v >= -(1n << 31n)) w.typed(0xd2, BigInt.asUintN(32, v), 4);
    else if (v >= -(1n << 63n)) w.typed(0xd3, BigInt.asUintN(64, v), 8);
    else throw new RangeError(`msgpack: ${v} is over 64 bits`);
  }
}

function writeFloat64(w: Writer, v: number): void {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(v);
  w.byte(0xcb);
  w.bytes(b);
}

function writeHeader(w: Writer, length: number, fix: number, fixMax: number, types: [number, number, number]): void {
  if (length <= fixMax) w.byte(fix | length);
  else if (length < 1 << 16) w.typed(types[1], BigInt(length), 2);
  else w.typed(types[2], BigInt(length), 4);
}

function write(w: Writer, v: MsgpackValue): void {
  if (v === null) w.byte(0xc0);
  else if (typeof v === "boolean") w.byte(v ? 0xc3 : 0xc2);
  else if (typeof v === "bigint") writeInteger(w, v);
  else if (typeof v === "number") Number.isInteger(v) ? writeInteger(w, BigInt(v)) : writeFloat64(w, v);
  else if (v instanceof Float64) writeFloat64(w, v.value);
  else if (typeof v === "string") {
    const utf8 = Buffer.from(v, "utf8");
    if (utf8.length < 32) w.byte(0xa0 | utf8.length);
    else if (utf8.length < 1 << 8) w.typed(0xd9, BigInt(utf8.length), 1);
    else writeHeader(w, utf8.length, 0xa0, 31, [0, 0xda, 0xdb]);
    w.bytes(utf8);
  } else {
    writeHeader(w, v.length, 0x90, 15, [0, 0xdc, 0xdd]);
    for (const item of v) write(w, item);
  }
}

export function encodeMsgpack(value: MsgpackValue): Buffer {
  const w = new Writer();
  write(w, value);
  return w.result();
}
