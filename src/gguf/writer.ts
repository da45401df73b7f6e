// Writes GGUF v3 files. Tensor data is pulled from each tensor's source while writing, so a file
// of any size streams to disk; the file appears under its name only once complete.

import { open, rename, rm, type FileHandle } from "node:fs/promises";
import { BadRequestError } from "../api/errors.js";
import { ggmlTensorBytes, isKnownGgmlType, type GgmlTypeId } from "./ggml-types.js";
import { alignUp, GGUF_MAGIC } from "./reader.js";
import { GGUF_VALUE_TYPE_IDS, ggufAlignment, type GgufArray, type GgufNumberType, type GgufValue } from "./values.js";

const GGUF_VERSION = 3;
const FLUSH_BYTES = 4 << 20;

export interface GgufTensorSource {
  name: string;
  /** ggml order: dims[0] (ne0) is the contiguous dimension. */
  dims: number[];
  type: GgmlTypeId;
  /** Called once, when the tensor is written; the chunks must add up to the tensor's exact size. */
  data: () => Buffer | Iterable<Buffer>;
}

export interface GgufWriteSpec {
  metadata: Array<[key: string, value: GgufValue]>;
  tensors: GgufTensorSource[];
}

/** A growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = Buffer.allocUnsafe(1 << 16);
  length = 0;

  /** Makes room for n more bytes and returns where they start; may replace `buf`, so call it first. */
  private reserve(n: number): number {
    const start = this.length;
    if (start + n > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, start + n));
      this.buf.copy(grown, 0, 0, start);
      this.buf = grown;
    }
    this.length = start + n;
    return start;
  }

  /** A writer of one fixed-size value: room first (it may replace `buf`), then the write in place. */
  private fixed<T>(size: number, write: (buf: Buffer, value: T, at: number) => unknown): (value: T) => void {
    return (value) => {
      const at = this.reserve(size);
      write(this.buf, value, at);
    };
  }

  u8 = this.fixed<number>(1, (b, v, at) => b.writeUInt8(v, at));
  i8 = this.fixed<number>(1, (b, v, at) => b.writeInt8(v, at));
  u16 = this.fixed<number>(2, (b, v, at) => b.writeUInt16LE(v, at));
  i16 = this.fixed<number>(2, (b, v, at) => b.writeInt16LE(v, at));
  u32 = this.fixed<number>(4, (b, v, at) => b.writeUInt32LE(v, at));
  i32 = this.fixed<number>(4, (b, v, at) => b.writeInt32LE(v, at));
  f32 = this.fixed<number>(4, (b, v, at) => b.writeFloatLE(v, at));
  f64 = this.fixed<number>(8, (b, v, at) => b.writeDoubleLE(v, at));
  u64 = this.fixed<bigint>(8, (b, v, at) => b.writeBigUInt64LE(v, at));
  i64 = this.fixed<bigint>(8, (b, v, at) => b.writeBigInt64LE(v, at));
  count = (n: number) => this.u64(BigInt(n));
  bool = (v: boolean) => this.u8(v ? 1 : 0);

  string = (s: string) => {
    const byteLength = Buffer.byteLength(s, "utf8");
    this.count(byteLength);
    const at = this.reserve(byteLength);
    this.buf.write(s, at, byteLength, "utf8");
  };

  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

const INTEGER_RANGES: Partial<Record<GgufNumberType, [number, number]>> = {
  uint8: [0, 0xff],
  int8: [-0x80, 0x7f],
  uint16: [0, 0xffff],
  int16: [-0x8000, 0x7fff],
  uint32: [0, 0xffffffff],
  int32: [-0x80000000, 0x7fffffff],
};

const NUMBER_WRITERS: Record<GgufNumberType, (w: ByteWriter, v: number) => void> = {
  uint8: (w, v) => w.u8(v),
  int8: (w, v) => w.i8(v),
  uint16: (w, v) => w.u16(v),
  int16: (w, v) => w.i16(v),
  uint32: (w, v) => w.u32(v),
  int32: (w, v) => w.i32(v),
  float32: (w, v) => w.f32(v),
  float64: (w, v) => w.f64(v),
};

const BIGINT_RANGES = {
  uint64: [0n, 2n ** 64n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
} as const;

function checkNumber(key: string, type: GgufNumberType, value: number): void {
  const range = INTEGER_RANGES[type];
  if (typeof value !== "number" || (range && !(Number.isInteger(value) && value >= range[0] && value <= range[1]))) {
    throw new BadRequestError(`metadata ${key}: ${String(value)} is not a valid ${type}`);
  }
}

function checkBigInt(key: string, type: "uint64" | "int64", value: bigint): void {
  const [min, max] = BIGINT_RANGES[type];
  if (typeof value !== "bigint" || value < min || value > max) {
    throw new BadRequestError(`metadata ${key}: ${String(value)} is not a valid ${type}`);
  }
}

function writeValue(w: ByteWriter, key: string, value: GgufValue): void {
  switch (value.type) {
    case "array":
      return writeArray(w, key, value);
    case "string":
      return w.string(value.value);
    case "bool":
      return w.bool(value.value);
    case "uint64":
    case "int64":
      checkBigInt(key, value.type, value.value);
      return value.type === "uint64" ? w.u64(value.value) : w.i64(value.value);
    default:
      checkNumber(key, value.type, value.value);
      return NUMBER_WRITERS[value.type](w, value.value);
  }
}

function writeArray(w: ByteWriter, key: string, array: GgufArray): void {
  w.u32(GGUF_VALUE_TYPE_IDS[array.itemType]);
  w.count(array.value.length);
  switch (array.itemType) {
    case "array":
      return array.value.forEach((item) => writeArray(w, key, item));
    case "string":
      return array.value.forEach(w.string);
    case "bool":
      return array.value.forEach(w.bool);
    case "uint64":
    case "int64": {
      const type = array.itemType;
      const write = type === "uint64" ? w.u64 : w.i64;
      return array.value.forEach((item) => (checkBigInt(key, type, item), write(item)));
    }
    default: {
      const type = array.itemType;
      const write = NUMBER_WRITERS[type];
      return array.value.forEach((item) => (checkNumber(key, type, item), write(w, item)));
    }
  }
}

interface PlacedTensor {
  source: GgufTensorSource;
  byteSize: number;
  offset: number;
}

function placeTensors(tensors: GgufTensorSource[], alignment: number): PlacedTensor[] {
  const names = new Set<string>();
  let offset = 0;
  return tensors.map((source) => {
    if (names.has(source.name)) throw new BadRequestError(`duplicate tensor ${source.name}`);
    names.add(source.name);
    if (!isKnownGgmlType(source.type)) throw new BadRequestError(`tensor ${source.name}: unknown ggml type ${String(source.type)}`);
    if (source.dims.length < 1 || source.dims.length > 4 || !source.dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new BadRequestError(`tensor ${source.name}: invalid dims [${source.dims.join(", ")}]`);
    }
    const byteSize = ggmlTensorBytes(source.type, source.dims);
    if (typeof byteSize === "string") throw new BadRequestError(`tensor ${source.name}: ${byteSize}`);
    const placed = { source, byteSize, offset };
    offset = alignUp(offset + byteSize, alignment);
    return placed;
  });
}

function encodeHeader(spec: GgufWriteSpec, placed: PlacedTensor[], alignment: number): Buffer {
  const w = new ByteWriter();
  for (const char of GGUF_MAGIC) w.u8(char.charCodeAt(0));
  w.u32(GGUF_VERSION);
  w.count(placed.length);
  w.count(spec.metadata.length);
  const keys = new Set<string>();
  for (const [key, value] of spec.metadata) {
    if (keys.has(key)) throw new BadRequestError(`duplicate metadata key ${key}`);
    keys.add(key);
    w.string(key);
    w.u32(GGUF_VALUE_TYPE_IDS[value.type]);
    writeValue(w, key, value);
  }
  for (const { source, offset } of placed) {
    w.string(source.name);
    w.u32(source.dims.length);
    source.dims.forEach(w.count);
    w.u32(source.type);
    w.count(offset);
  }
  const padding = alignUp(w.length, alignment) - w.length;
  for (let i = 0; i < padding; i++) w.u8(0);
  return w.bytes();
}

/**
 * Copies small chunks into one staging buffer and writes it when full, so sources may yield many
 * small chunks, and may reuse a chunk's buffer once it has been handed over.
 */
class FileSink {
  private readonly staging = Buffer.allocUnsafe(FLUSH_BYTES);
  private stagedBytes = 0;

  constructor(private readonly handle: FileHandle) {}

  async write(chunk: Buffer): Promise<void> {
    if (this.stagedBytes + chunk.length > FLUSH_BYTES) await this.flush();
    if (chunk.length >= FLUSH_BYTES) {
      await this.writeAll(chunk);
      return;
    }
    chunk.copy(this.staging, this.stagedBytes);
    this.stagedBytes += chunk.length;
  }

  async flush(): Promise<void> {
    if (this.stagedBytes === 0) return;
    await this.writeAll(this.staging.subarray(0, this.stagedBytes));
    this.stagedBytes = 0;
  }

  private async writeAll(bytes: Buffer): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done);
      done += bytesWritten;
    }
  }
}

async function writeTensorData(sink: FileSink, { source, byteSize }: PlacedTensor, alignment: number): Promise<void> {
  const data = source.data();
  const chunks = Buffer.isBuffer(data) ? [data] : data;
  let written = 0;
  for (const chunk of chunks) {
    written += chunk.length;
    if (written > byteSize) break;
    await sink.write(chunk);
  }
  if (written !== byteSize) {
    throw new BadRequestError(`tensor ${source.name}: data has ${written > byteSize ? "more than " : ""}${written} bytes, expected ${byteSize}`);
  }
  const padding = alignUp(byteSize, alignment) - byteSize;
  if (padding > 0) await sink.write(Buffer.alloc(padding));
}

/** Writes `spec` to `path` (via `path + ".tmp"`, renamed when complete). */
export async function writeGguf(path: string, spec: GgufWriteSpec): Promise<void> {
  const alignment = ggufAlignment(spec.metadata.find(([key]) => key === "general.alignment")?.[1]);
  if (typeof alignment === "string") throw new BadRequestError(alignment);
  const placed = placeTensors(spec.tensors, alignment);
  const header = encodeHeader(spec, placed, alignment);
  const tmpPath = `${path}.tmp`;
  const handle = await open(tmpPath, "w");
  try {
    const sink = new FileSink(handle);
    await sink.write(header);
    for (const tensor of placed) await writeTensorData(sink, tensor, alignment);
    await sink.flush();
    await handle.close();
    await rename(tmpPath, path);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(tmpPath, { force: true });
    throw error;
  }
}
