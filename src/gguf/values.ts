// GGUF metadata values keep their on-disk type, so a key copied from one file to another is written
// back byte-for-byte the same (llama.cpp rejects e.g. an int32 where it expects a uint32).

import type { GgmlTypeId } from "./ggml-types.js";

/** On-disk value type ids (gguf_type in ggml/include/gguf.h). */
export const GGUF_VALUE_TYPE_IDS = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

export type GgufValueTypeName = keyof typeof GGUF_VALUE_TYPE_IDS;
export type GgufNumberType = "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32" | "float32" | "float64";
export type GgufBigIntType = "uint64" | "int64";

export type GgufScalar =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string };

/** Every element of a GGUF array has the array's one item type; nested arrays carry their own. */
export type GgufArray =
  | { type: "array"; itemType: GgufNumberType; value: number[] }
  | { type: "array"; itemType: GgufBigIntType; value: bigint[] }
  | { type: "array"; itemType: "bool"; value: boolean[] }
  | { type: "array"; itemType: "string"; value: string[] }
  | { type: "array"; itemType: "array"; value: GgufArray[] };

export type GgufValue = GgufScalar | GgufArray;

export type GgufMetadata = Map<string, GgufValue>;

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] (ne0) is the contiguous dimension. */
  dims: number[];
  type: GgmlTypeId;
  /** Offset of the tensor's data relative to `GgufFile.dataOffset`. */
  offset: number;
  byteSize: number;
}

export interface GgufFile {
  path: string;
  version: 2 | 3;
  fileSize: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset where tensor data begins. */
  dataOffset: number;
}

const numberOf = (type: GgufNumberType) => (value: number): GgufScalar => ({ type, value });
const bigintOf = (type: GgufBigIntType) => (value: bigint): GgufScalar => ({ type, value });

/** Constructors that name the GGUF type at the call site: `gguf.uint32(768)`, `gguf.array("string", tokens)`. */
export const gguf = {
  uint8: numberOf("uint8"),
  int8: numberOf("int8"),
  uint16: numberOf("uint16"),
  int16: numberOf("int16"),
  uint32: numberOf("uint32"),
  int32: numberOf("int32"),
  float32: numberOf("float32"),
  float64: numberOf("float64"),
  uint64: bigintOf("uint64"),
  int64: bigintOf("int64"),
  bool: (value: boolean): GgufScalar => ({ type: "bool", value }),
  string: (value: string): GgufScalar => ({ type: "string", value }),
  array: ((itemType: GgufArray["itemType"], value: GgufArray["value"]) => ({ type: "array", itemType, value })) as {
    (itemType: GgufNumberType, value: number[]): GgufArray;
    (itemType: GgufBigIntType, value: bigint[]): GgufArray;
    (itemType: "bool", value: boolean[]): GgufArray;
    (itemType: "string", value: string[]): GgufArray;
    (itemType: "array", value: GgufArray[]): GgufArray;
  },
};

export const GGUF_DEFAULT_ALIGNMENT = 32;

/** The data alignment a `general.alignment` entry sets, or an error text when it is not a power-of-two uint32. */
export function ggufAlignment(entry: GgufValue | undefined): number | string {
  if (!entry) return GGUF_DEFAULT_ALIGNMENT;
  if (entry.type !== "uint32" || entry.value === 0 || (entry.value & (entry.value - 1)) !== 0) {
    return `general.alignment must be a power-of-two uint32, got ${entry.type} ${String(entry.value)}`;
  }
  return entry.value;
}

export function metadataString(file: GgufFile, key: string): string | undefined {
  const entry = file.metadata.get(key);
  return entry?.type === "string" ? entry.value : undefined;
}

/** A numeric key as a JS number whatever its integer or float width. */
export function metadataNumber(file: GgufFile, key: string): number | undefined {
  const entry = file.metadata.get(key);
  if (!entry || entry.type === "array" || entry.type === "string" || entry.type === "bool") return undefined;
  return Number(entry.value);
}

export function metadataArrayLength(file: GgufFile, key: string): number | undefined {
  const entry = file.metadata.get(key);
  return entry?.type === "array" ? entry.value.length : undefined;
}
