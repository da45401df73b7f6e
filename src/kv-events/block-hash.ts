// The block hashes a prefix-cache-aware router computes from a request's tokens: llm-d's token
// processor, itself aligned with vLLM's sha256_cbor_64bit. Block i's hash is the low 64 bits of
// SHA-256 over canonical CBOR [parent hash, the block's token ids, null], chained from a root
// hash of SHA-256 over CBOR(seed) (vLLM's NONE_HASH; the seed is PYTHONHASHSEED on the vLLM side,
// "" by default). Publishing these hashes lets llm-d's indexer find our blocks by the keys it
// computes itself.
import { createHash } from "node:crypto";

/** A CBOR head: major type and argument, in the shortest form (canonical CBOR). */
function head(major: number, value: bigint): number[] {
  const m = major << 5;
  if (value < 24n) return [m | Number(value)];
  const size = value < 1n << 8n ? 1 : value < 1n << 16n ? 2 : value < 1n << 32n ? 4 : 8;
  const out = [m | { 1: 24, 2: 25, 4: 26, 8: 27 }[size]!];
  for (let shift = BigInt((size - 1) * 8); shift >= 0n; shift -= 8n) out.push(Number((value >> shift) & 0xffn));
  return out;
}

function low64(cbor: number[]): bigint {
  return createHash("sha256").update(Uint8Array.from(cbor)).digest().readBigUInt64BE(24);
}

export function rootBlockHash(seed = ""): bigint {
  const utf8 = Buffer.from(seed, "utf8");
  return low64([...head(3, BigInt(utf8.length)), ...utf8]);
}

export function blockHash(parent: bigint, tokens: ArrayLike<number>): bigint {
  const cbor = [...head(4, 3n), ...head(0, parent), ...head(4, BigInt(tokens.length))];
  for (let i = 0; i < tokens.length; i++) cbor.push(...head(0, BigInt(tokens[i])));
  cbor.push(0xf6); // null: no extra keys (LoRA, multimodal)
  return low64(cbor);
}
