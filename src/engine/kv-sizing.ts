// How many KV cells a model's cache gets, and the per-request context that follows, decided from
// the memory the device has once the weights are loaded: vLLM gives its cache a share of the
// GPU's free memory after the weights (gpu_memory_utilization), and Ollama picks a larger default
// context where memory allows. A cache sized from the context alone (the old default,
// num_ctx x ceil(parallel / 4)) held 8 sequences of 1,500 tokens only by preempting and
// recomputing them: 131 t/s against llama-server's 327 t/s on 2 cores (llama110m, 2026-11).
import type { KvCacheType, ModelInfo } from "../native/index.js";

/** Bytes per element of each cache type (q8_0 and q4_0 store 32 values in 34 and 18 bytes). */
const BYTES_PER_VALUE: Record<KvCacheType, number> = { f16: 2, q8_0: 34 / 32, q4_0: 18 / 32 };

/** llama.cpp pads the cache to a multiple of 256 cells. */
const CELL_ALIGNMENT = 256;

/** The per-request context when the model does not say how long it was trained for. */
const FALLBACK_CONTEXT = 4096;

/** Share of the memory left after the weights that the cache takes by default, per device. */
export const DEFAULT_MEMORY_SHARE = { gpu: 0.9, cpu: 0.5 } as const;

function metadataNumber(info: ModelInfo, key: string): number | undefined {
  const text = info.metadata[`${info.architecture}.${key}`];
  if (text === undefined) return undefined;
  // Per-layer arrays (head_count_kv of hybrid models) come as "[8, 8, ...]": the largest counts.
  const values = text.match(/\d+/g)?.map(Number) ?? [];
  return values.length ? Math.max(...values) : undefined;
}

/** Bytes of K and V that one cell takes over all layers, from the model's shape. */
export function kvBytesPerCell(info: ModelInfo, cacheType: KvCacheType): number {
  const heads = metadataNumber(info, "attention.head_count") ?? 1;
  const kvHeads = metadataNumber(info, "attention.head_count_kv") ?? heads;
  const headDim = Math.floor(info.embeddingLength / heads);
  const keyLength = metadataNumber(info, "attention.key_length") ?? headDim;
  const valueLength = metadataNumber(info, "attention.value_length") ?? headDim;
  return Math.ceil(info.layerCount * kvHeads * (keyLength + valueLength) * BYTES_PER_VALUE[cacheType]);
}

export interface KvSizingInput {
  bytesPerCell: number;
  /** Bytes the cache may come from: the GPU's free memory after the weights, or free RAM. */
  memoryFree: number;
  /** Share of `memoryFree` the cache takes (0..1]. */
  memoryShare: number;
  /** Sequences generating at once. */
  parallel: number;
  /** The model's trained context (0 when unknown). */
  contextTrained: number;
  /** Per-request context the operator set (OLLAMA_CONTEXT_LENGTH); default from memory. */
  contextLength?: number;
  /** num_ctx of the request that loads the model: the per-request context where it is larger. */
  contextRequested?: number;
  /** Cells the operator set (kvCells, VLLAMA_KV_CELLS): used as is. */
  kvCells?: number;
}

export interface KvSizing {
  kvCells: number;
  /** Default per-request context (num_ctx), never more than the cache holds. */
  contextLength: number;
  bytes: number;
  /** What decided kvCells. */
  sizedBy: "kvCells" | "memory" | "parallel x context";
}

/**
 * The cache holds `parallel` sequences of the per-request context where memory allows, else what
 * the memory share holds. The per-request context is the default one (the model's trained one, or
 * less where one sequence of it would not fit), or the requested one where that is larger.
 */
export function sizeKvCache(input: KvSizingInput): KvSizing {
  const byMemory = alignDown(Math.floor((input.memoryFree * input.memoryShare) / input.bytesPerCell));
  const trained = input.contextTrained > 0 ? input.contextTrained : FALLBACK_CONTEXT;
  const defaultContext = input.contextLength ?? Math.min(trained, Math.max(byMemory, CELL_ALIGNMENT));
  const wantedContext = Math.max(defaultContext, input.contextRequested ?? 0);
  let kvCells: number;
  let sizedBy: KvSizing["sizedBy"];
  if (input.kvCells !== undefined) {
    kvCells = input.kvCells;
    sizedBy = "kvCells";
  } else {
    const wanted = alignUp(input.parallel * wantedContext);
    // Memory short of even one context still gets the smallest cache llama.cpp makes.
    kvCells = Math.max(CELL_ALIGNMENT, Math.min(wanted, byMemory));
    sizedBy = wanted <= byMemory ? "parallel x context" : "memory";
  }
  return {
    kvCells,
    contextLength: Math.min(wantedContext, kvCells),
    bytes: kvCells * input.bytesPerCell,
    sizedBy,
  };
}

function alignDown(cells: number): number {
  return Math.floor(cells / CELL_ALIGNMENT) * CELL_ALIGNMENT;
}

function alignUp(cells: number): number {
  return Math.ceil(cells / CELL_ALIGNMENT) * CELL_ALIGNMENT;
}
