// Reads the header of a GGUF file (metadata and tensor infos), never the tensor data: model files
// can be many gigabytes, while even a 150k-token vocabulary header is a few megabytes.

import { open, type FileHandle } from "node:fs/promises";
import { BadRequestError, NotFoundError } from "../api/errors.js";
import {
  elementCount,
  ggmlTensorBytes,
  ggmlTypeName,
  GgmlType,
  isKnownGgmlType,
  type GgmlTypeId,
} from "./ggml-types.js";
import {
  GGUF_VALUE_TYPE_IDS,
  ggufAlignment,
  metadataNumber,
  metadataString,
  type GgufArray,
  type GgufFile,
  type GgufMetadata,
  type GgufTensorInfo,
  type GgufValue,
  type GgufValueTypeName,
} from "./values.js";

export const GGUF_MAGIC = "GGUF";
const SUPPORTED_VERSIONS = [2, 3];
const GGML_MAX_DIMS = 4;
// Large enough for the header of most real models (a 150k-token vocabulary is about 6 MB), so the
// parse rarely starts over.
const FIRST_WINDOW_BYTES = 8 << 20;
// Real headers are tens of megabytes at most; a corrupted length must not pull gigabytes of
// tensor data into memory.
const MAX_HEADER_BYTES = 256 << 20;

const TYPE_NAME_BY_ID = new Map<number, GgufValueTypeName>(
  (Object.entries(GGUF_VALUE_TYPE_IDS) as Array<[GgufValueTypeName, number]>).map(([name, id]) => [id, name]),
);

/** Smallest encoding of one value of each type, to reject counts the file cannot possibly hold. */
const MIN_ENCODED_BYTES: Record<GgufValueTypeName, number> = {
  uint8: 1, int8: 1, bool: 1, uint16: 2, int16: 2, uint32: 4, int32: 4, float32: 4,
  uint64: 8, int64: 8, float64: 8, string: 8, array: 12,
};

/** Thrown by the cursor when the bytes read so far end before the file does: read more, parse again. */
const NEED_MORE_BYTES = Symbol("need more bytes");

class HeaderCorruptError extends Error {}

/** Sequential little-endian reads over the start of the file, bounds-checked against the file size. */
class HeaderCursor {
  pos = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly fileSize: number,
  ) {}

  private need(n: number, what: string): number {
    const start = this.pos;
    if (start + n > this.buf.length) {
      if (this.buf.length < this.fileSize) throw NEED_MORE_BYTES;
      throw new HeaderCorruptError(`truncated header: ${what} at byte ${start} needs ${n} bytes, the file has ${this.fileSize}`);
    }
    this.pos = start + n;
    return start;
  }

  /** A count or length read from the file, rejected when even minimal items would not fit in it. */
  count(what: string, minBytesEach: number): number {
    const start = this.need(8, what);
    // Two 32-bit halves instead of a BigInt: this runs once per string of 150k-token vocabularies.
    const value = this.buf.readUInt32LE(start) + this.buf.readUInt32LE(start + 4) * 2 ** 32;
    const remaining = this.fileSize - this.pos;
    if (value * minBytesEach > remaining) {
      const exact = this.buf.readBigUInt64LE(start);
      throw new HeaderCorruptError(`corrupted header: ${what} is ${exact}, more than the ${remaining} bytes left in the file can hold`);
    }
    return value;
  }

  u8 = (): number => this.buf.readUInt8(this.need(1, "uint8"));
  i8 = (): number => this.buf.readInt8(this.need(1, "int8"));
  u16 = (): number => this.buf.readUInt16LE(this.need(2, "uint16"));
  i16 = (): number => this.buf.readInt16LE(this.need(2, "int16"));
  u32 = (): number => this.buf.readUInt32LE(this.need(4, "uint32"));
  i32 = (): number => this.buf.readInt32LE(this.need(4, "int32"));
  f32 = (): number => this.buf.readFloatLE(this.need(4, "float32"));
  f64 = (): number => this.buf.readDoubleLE(this.need(8, "float64"));
  u64 = (): bigint => this.buf.readBigUInt64LE(this.need(8, "uint64"));
  i64 = (): bigint => this.buf.readBigInt64LE(this.need(8, "int64"));

  bool = (): boolean => {
    const byte = this.u8();
    if (byte > 1) throw new HeaderCorruptError(`corrupted header: bool value ${byte} at byte ${this.pos - 1}`);
    return byte === 1;
  };

  string = (): string => {
    const length = this.count("string length", 1);
    const start = this.need(length, "string");
    return this.buf.toString("utf8", start, start + length);
  };

  ascii(n: number): string {
    const start = this.need(n, "magic");
    return this.buf.toString("latin1", start, start + n);
  }
}

const NUMBER_READERS = {
  uint8: (c: HeaderCursor) => c.u8(),
  int8: (c: HeaderCursor) => c.i8(),
  uint16: (c: HeaderCursor) => c.u16(),
  int16: (c: HeaderCursor) => c.i16(),
  uint32: (c: HeaderCursor) => c.u32(),
  int32: (c: HeaderCursor) => c.i32(),
  float32: (c: HeaderCursor) => c.f32(),
  float64: (c: HeaderCursor) => c.f64(),
} as const;

function readValueType(cursor: HeaderCursor, what: string): GgufValueTypeName {
  const id = cursor.u32();
  const name = TYPE_NAME_BY_ID.get(id);
  if (!name) throw new HeaderCorruptError(`corrupted header: ${what} has unknown value type ${id}`);
  return name;
}

function readValue(cursor: HeaderCursor, type: GgufValueTypeName, key: string): GgufValue {
  switch (type) {
    case "array":
      return readArray(cursor, key);
    case "string":
      return { type, value: cursor.string() };
    case "bool":
      return { type, value: cursor.bool() };
    case "uint64":
      return { type, value: cursor.u64() };
    case "int64":
      return { type, value: cursor.i64() };
    default:
      return { type, value: NUMBER_READERS[type](cursor) };
  }
}

function readArray(cursor: HeaderCursor, key: string): GgufArray {
  const itemType = readValueType(cursor, `array item of ${key}`);
  const length = cursor.count(`length of array ${key}`, MIN_ENCODED_BYTES[itemType]);
  switch (itemType) {
    case "array":
      return { type: "array", itemType, value: readItems(length, () => readArray(cursor, key)) };
    case "string":
      return { type: "array", itemType, value: readItems(length, cursor.string) };
    case "bool":
      return { type: "array", itemType, value: readItems(length, cursor.bool) };
    case "uint64":
      return { type: "array", itemType, value: readItems(length, cursor.u64) };
    case "int64":
      return { type: "array", itemType, value: readItems(length, cursor.i64) };
    default: {
      const read = NUMBER_READERS[itemType];
      return { type: "array", itemType, value: readItems(length, () => read(cursor)) };
    }
  }
}

function readItems<T>(length: number, read: () => T): T[] {
  const items = new Array<T>(length);
  for (let i = 0; i < length; i++) items[i] = read();
  return items;
}

function readVersion(cursor: HeaderCursor): 2 | 3 {
  const magic = cursor.ascii(4);
  if (magic !== GGUF_MAGIC) {
    throw new HeaderCorruptError(`not a GGUF file (magic ${JSON.stringify(magic)}, expected "GGUF")`);
  }
  const version = cursor.u32();
  if ((version & 0xffff) === 0 && version !== 0) {
    throw new HeaderCorruptError(`big-endian GGUF files are not supported (version field 0x${version.toString(16)})`);
  }
  if (!SUPPORTED_VERSIONS.includes(version)) {
    throw new HeaderCorruptError(`unsupported GGUF version ${version} (supported: ${SUPPORTED_VERSIONS.join(", ")})`);
  }
  return version as 2 | 3;
}

function readMetadata(cursor: HeaderCursor, count: number): GgufMetadata {
  const metadata: GgufMetadata = new Map();
  for (let i = 0; i < count; i++) {
    const key = cursor.string();
    if (metadata.has(key)) throw new HeaderCorruptError(`corrupted header: duplicate metadata key ${key}`);
    metadata.set(key, readValue(cursor, readValueType(cursor, `metadata key ${key}`), key));
  }
  return metadata;
}

function readTensorInfo(cursor: HeaderCursor): GgufTensorInfo {
  const name = cursor.string();
  const nDims = cursor.u32();
  if (nDims > GGML_MAX_DIMS) throw new HeaderCorruptError(`tensor ${name} has ${nDims} dimensions, at most ${GGML_MAX_DIMS} allowed`);
  const dims: number[] = [];
  for (let d = 0; d < nDims; d++) {
    const dim = cursor.u64();
    if (dim > BigInt(Number.MAX_SAFE_INTEGER)) throw new HeaderCorruptError(`tensor ${name} has an absurd dimension ${dim}`);
    dims.push(Number(dim));
  }
  const typeId = cursor.u32();
  if (!isKnownGgmlType(typeId)) throw new HeaderCorruptError(`tensor ${name} has unknown ggml type ${typeId}`);
  if (!Number.isSafeInteger(elementCount(dims))) throw new HeaderCorruptError(`tensor ${name} has an absurd element count`);
  const byteSize = ggmlTensorBytes(typeId, dims);
  if (typeof byteSize === "string") throw new HeaderCorruptError(`tensor ${name}: ${byteSize}`);
  const offset = cursor.u64();
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw new HeaderCorruptError(`tensor ${name} has an absurd offset ${offset}`);
  return { name, dims, type: typeId, offset: Number(offset), byteSize };
}

function checkTensorPlacement(tensors: GgufTensorInfo[], alignment: number, dataBytes: number): void {
  const names = new Set<string>();
  for (const tensor of tensors) {
    if (names.has(tensor.name)) throw new HeaderCorruptError(`corrupted header: duplicate tensor ${tensor.name}`);
    names.add(tensor.name);
    if (tensor.offset % alignment !== 0) {
      throw new HeaderCorruptError(`tensor ${tensor.name} offset ${tensor.offset} is not a multiple of the alignment ${alignment}`);
    }
    if (tensor.offset + tensor.byteSize > dataBytes) {
      throw new HeaderCorruptError(
        `tensor ${tensor.name} data (${tensor.byteSize} bytes at data offset ${tensor.offset}) extends past the end of the file: truncated?`,
      );
    }
  }
}

function parseHeader(buf: Buffer, path: string, fileSize: number): GgufFile {
  const cursor = new HeaderCursor(buf, fileSize);
  const version = readVersion(cursor);
  const tensorCount = cursor.count("tensor count", 8 + 4 + 4 + 8);
  const metadataCount = cursor.count("metadata count", 8 + 4 + 1);
  const metadata = readMetadata(cursor, metadataCount);
  const alignment = ggufAlignment(metadata.get("general.alignment"));
  if (typeof alignment === "string") throw new HeaderCorruptError(alignment);
  const tensors = readItems(tensorCount, () => readTensorInfo(cursor));
  const dataOffset = alignUp(cursor.pos, alignment);
  if (tensors.length > 0) checkTensorPlacement(tensors, alignment, fileSize - dataOffset);
  return { path, version, fileSize, metadata, tensors, alignment, dataOffset };
}

export function alignUp(offset: number, alignment: number): number {
  return Math.ceil(offset / alignment) * alignment;
}

/** Reads more of the file into a larger window, keeping what was already read. */
async function growWindow(handle: FileHandle, window: Buffer, fileSize: number): Promise<Buffer> {
  if (window.length >= MAX_HEADER_BYTES) {
    throw new HeaderCorruptError(`corrupted header: longer than ${MAX_HEADER_BYTES >> 20} MiB`);
  }
  const grown = Buffer.allocUnsafe(Math.min(fileSize, MAX_HEADER_BYTES, window.length * 2));
  window.copy(grown);
  await readFully(handle, grown, window.length);
  return grown;
}

async function readFully(handle: FileHandle, target: Buffer, from: number): Promise<void> {
  let filled = from;
  while (filled < target.length) {
    const { bytesRead } = await handle.read(target, filled, target.length - filled, filled);
    if (bytesRead === 0) throw new HeaderCorruptError(`file shrank while reading (at byte ${filled})`);
    filled += bytesRead;
  }
}

function fileError(path: string, error: unknown): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return new NotFoundError(`GGUF file ${path} not found`);
  if (code) return new BadRequestError(`cannot read GGUF file ${path}: ${(error as Error).message}`);
  return error as Error;
}

/**
 * Parses a GGUF v2/v3 header. Bad magic, unsupported versions and truncated or corrupted headers
 * throw BadRequestError naming the file and the problem; a missing file NotFoundError.
 */
export async function readGgufHeader(path: string): Promise<GgufFile> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw fileError(path, error);
  }
  try {
    const { size: fileSize } = await handle.stat();
    let window: Buffer = Buffer.allocUnsafe(Math.min(fileSize, FIRST_WINDOW_BYTES));
    await readFully(handle, window, 0);
    for (;;) {
      try {
        return parseHeader(window, path, fileSize);
      } catch (error) {
        if (error !== NEED_MORE_BYTES) throw error;
        window = await growWindow(handle, window, fileSize);
      }
    }
  } catch (error) {
    if (error instanceof HeaderCorruptError) throw new BadRequestError(`invalid GGUF file ${path}: ${error.message}`);
    throw fileError(path, error);
  } finally {
    await handle.close();
  }
}

export function ggufArchitecture(file: GgufFile): string | undefined {
  return metadataString(file, "general.architecture");
}

export function ggufParameterCount(file: GgufFile): number {
  return file.tensors.reduce((sum, tensor) => sum + elementCount(tensor.dims), 0);
}

/** llama_ftype names (include/llama.h), as Ollama shows them. */
const FILE_TYPE_LABELS: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
  11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M",
  18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S",
  25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M",
  32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
};

export const LLAMA_FILE_TYPE = { F32: 0, F16: 1, Q8_0: 7 } as const;

/** "Q8_0", "Q4_K_M", ...: from general.file_type, else the type holding the most elements. */
export function ggufQuantizationLabel(file: GgufFile): string {
  const fileType = metadataNumber(file, "general.file_type");
  const label = fileType === undefined ? undefined : FILE_TYPE_LABELS[fileType];
  return label ?? dominantTensorType(file) ?? "unknown";
}

function dominantTensorType(file: GgufFile): string | undefined {
  const elementsByType = new Map<GgmlTypeId, number>();
  for (const tensor of file.tensors) {
    elementsByType.set(tensor.type, (elementsByType.get(tensor.type) ?? 0) + elementCount(tensor.dims));
  }
  let best: GgmlTypeId = GgmlType.F32;
  let bestCount = -1;
  for (const [type, count] of elementsByType) {
    if (count > bestCount) [best, bestCount] = [type, count];
  }
  return bestCount < 0 ? undefined : ggmlTypeName(best);
}

/**
 * Ollama's parameter size label (format.HumanNumber): "7.6B", "494.03M", "260K"; whole numbers
 * drop the decimals.
 */
export function formatParameterSize(count: number): string {
  const units: Array<[scale: number, suffix: string, decimals: number]> = [
    [1e12, "T", 1], [1e9, "B", 1], [1e6, "M", 2], [1e3, "K", 0],
  ];
  for (const [scale, suffix, decimals] of units) {
    if (count < scale) continue;
    const scaled = count / scale;
    return `${Number.isInteger(scaled) ? scaled : scaled.toFixed(decimals)}${suffix}`;
  }
  return String(count);
}
