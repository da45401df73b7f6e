// ggml tensor types: ids as stored in GGUF tensor infos, block geometry for size computation,
// and the few encoders the synthetic model writer needs (F16, Q8_0).
// Ids and sizes follow ggml/include/ggml.h and ggml/src/ggml-common.h of the bundled llama.cpp.

export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
  NVFP4: 40,
  Q1_0: 41,
  Q2_0: 42,
} as const;

export type GgmlTypeName = keyof typeof GgmlType;
export type GgmlTypeId = (typeof GgmlType)[GgmlTypeName];

interface BlockLayout {
  /** Elements per block; a row's first dimension must be a multiple of it. */
  blockSize: number;
  bytesPerBlock: number;
}

const QK_K = 256;

const LAYOUTS: Record<GgmlTypeName, BlockLayout> = {
  F32: { blockSize: 1, bytesPerBlock: 4 },
  F16: { blockSize: 1, bytesPerBlock: 2 },
  BF16: { blockSize: 1, bytesPerBlock: 2 },
  F64: { blockSize: 1, bytesPerBlock: 8 },
  I8: { blockSize: 1, bytesPerBlock: 1 },
  I16: { blockSize: 1, bytesPerBlock: 2 },
  I32: { blockSize: 1, bytesPerBlock: 4 },
  I64: { blockSize: 1, bytesPerBlock: 8 },
  Q4_0: { blockSize: 32, bytesPerBlock: 18 },
  Q4_1: { blockSize: 32, bytesPerBlock: 20 },
  Q5_0: { blockSize: 32, bytesPerBlock: 22 },
  Q5_1: { blockSize: 32, bytesPerBlock: 24 },
  Q8_0: { blockSize: 32, bytesPerBlock: 34 },
  Q8_1: { blockSize: 32, bytesPerBlock: 36 },
  Q1_0: { blockSize: 128, bytesPerBlock: 18 },
  Q2_0: { blockSize: 64, bytesPerBlock: 18 },
  MXFP4: { blockSize: 32, bytesPerBlock: 17 },
  NVFP4: { blockSize: 64, bytesPerBlock: 36 },
  IQ4_NL: { blockSize: 32, bytesPerBlock: 18 },
  Q2_K: { blockSize: QK_K, bytesPerBlock: 84 },
  Q3_K: { blockSize: QK_K, bytesPerBlock: 110 },
  Q4_K: { blockSize: QK_K, bytesPerBlock: 144 },
  Q5_K: { blockSize: QK_K, bytesPerBlock: 176 },
  Q6_K: { blockSize: QK_K, bytesPerBlock: 210 },
  Q8_K: { blockSize: QK_K, bytesPerBlock: 292 },
  IQ2_XXS: { blockSize: QK_K, bytesPerBlock: 66 },
  IQ2_XS: { blockSize: QK_K, bytesPerBlock: 74 },
  IQ2_S: { blockSize: QK_K, bytesPerBlock: 82 },
  IQ3_XXS: { blockSize: QK_K, bytesPerBlock: 98 },
  IQ3_S: { blockSize: QK_K, bytesPerBlock: 110 },
  IQ1_S: { blockSize: QK_K, bytesPerBlock: 50 },
  IQ1_M: { blockSize: QK_K, bytesPerBlock: 56 },
  IQ4_XS: { blockSize: QK_K, bytesPerBlock: 136 },
  TQ1_0: { blockSize: QK_K, bytesPerBlock: 54 },
  TQ2_0: { blockSize: QK_K, bytesPerBlock: 66 },
};

const NAME_BY_ID = new Map<number, GgmlTypeName>(
  (Object.entries(GgmlType) as Array<[GgmlTypeName, number]>).map(([name, id]) => [id, name]),
);

export function ggmlTypeName(id: number): GgmlTypeName | undefined {
  return NAME_BY_ID.get(id);
}

export function isKnownGgmlType(id: number): id is GgmlTypeId {
  return NAME_BY_ID.has(id);
}

export function ggmlBlockLayout(id: GgmlTypeId): BlockLayout {
  return LAYOUTS[NAME_BY_ID.get(id)!];
}

/**
 * Bytes of a tensor's data, or an error text when the first dimension is not a whole number of
 * blocks (ggml stores rows as whole blocks along ne0).
 */
export function ggmlTensorBytes(id: GgmlTypeId, dims: readonly number[]): number | string {
  const { blockSize, bytesPerBlock } = ggmlBlockLayout(id);
  const ne0 = dims[0] ?? 1;
  if (ne0 % blockSize !== 0) {
    return `first dimension ${ne0} is not a multiple of the ${ggmlTypeName(id)} block size ${blockSize}`;
  }
  return (elementCount(dims) / blockSize) * bytesPerBlock;
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, n) => product * n, 1);
}

// Float32 -> IEEE half with round-to-nearest-even; shared views avoid allocating per value.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32ToF16(value: number): number {
  f32[0] = value;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;

  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    const rounded = roundShift(mantissa, shift);
    return sign | rounded;
  }
  // Carry from rounding may overflow the mantissa into the exponent, which is the right result.
  return sign | ((halfExponent << 10) + roundShift(mantissa, 13));
}

function roundShift(value: number, shift: number): number {
  const half = 1 << (shift - 1);
  const truncated = value >>> shift;
  const remainder = value & ((1 << shift) - 1);
  if (remainder > half || (remainder === half && (truncated & 1) === 1)) return truncated + 1;
  return truncated;
}

export function f16ToF32(half: number): number {
  const sign = half & 0x8000 ? -1 : 1;
  const exponent = (half >>> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

export const Q8_0_BLOCK_SIZE = 32;
export const Q8_0_BLOCK_BYTES = 34;

/**
 * Writes one Q8_0 block (f16 scale, then 32 int8 quants taken from `quants` at `quantsOffset`) at
 * `offset`; returns the next block's offset.
 */
export function writeQ8_0Block(target: Uint8Array, offset: number, scale: number, quants: Int8Array, quantsOffset = 0): number {
  if (quantsOffset + Q8_0_BLOCK_SIZE > quants.length) {
    throw new RangeError(`a Q8_0 block needs ${Q8_0_BLOCK_SIZE} quants from index ${quantsOffset}, only ${quants.length} given`);
  }
  const half = f32ToF16(scale);
  target[offset] = half & 0xff;
  target[offset + 1] = half >>> 8;
  for (let i = 0; i < Q8_0_BLOCK_SIZE; i++) target[offset + 2 + i] = quants[quantsOffset + i]! & 0xff;
  return offset + Q8_0_BLOCK_BYTES;
}
