// Types of the native addon (native/*.cpp). This file and binding.ts are the only places that
// know the addon's shape; everything else imports from src/native/index.ts.

// Each setting's values, defined once here (the lowest layer); src/engine/options.ts validates
// with them.
export const GPU_CHOICES = ["auto", "cuda", "cpu"] as const;
export type GpuChoice = (typeof GPU_CHOICES)[number];
export const FLASH_ATTENTION_MODES = ["auto", "on", "off"] as const;
export type FlashAttention = (typeof FLASH_ATTENTION_MODES)[number];
/** KV cache element types a server may choose (f32 only for tests of the native layer). */
export const KV_CACHE_TYPES = ["f16", "q8_0", "q4_0"] as const;
export type KvCacheType = (typeof KV_CACHE_TYPES)[number];

export interface BackendDevice {
  name: string;
  description: string;
  type: "cpu" | "gpu" | "igpu" | "accel" | "other";
  memoryFree: number;
  memoryTotal: number;
}

export interface LoadModelOptions {
  /** Layers to offload to the GPU: -1 = all (default when a GPU backend is used), 0 = none. */
  gpuLayers?: number;
  /** Index of the GPU that holds the model's main buffers (llama's main_gpu). */
  mainGpu?: number;
  useMmap?: boolean;
  /** RPC workers ("host:port") whose devices hold layers beside the local ones, as llama.cpp's --rpc. */
  rpc?: string[];
  /** Bound on each connect and answer of an RPC worker, in ms (0: none). */
  rpcTimeoutMs?: number;
  /** Load progress 0..1; called on the JS thread. */
  onProgress?: (progress: number) => void;
}

export interface ModelInfo {
  architecture: string;
  description: string;
  parameterCount: number;
  sizeBytes: number;
  contextLengthTrained: number;
  embeddingLength: number;
  layerCount: number;
  vocabSize: number;
  hasEncoder: boolean;
  hasDecoder: boolean;
  bos: number;
  eos: number;
  eot: number;
  addBos: boolean;
  addEos: boolean;
  /** Fill-in-the-middle token ids (llama_vocab_fim_*: the GGUF's keys, else found by name), -1 where none. */
  fim: { pre: number; suf: number; mid: number; pad: number; rep: number; sep: number };
  /** `tokenizer.chat_template`, or "" when the file has none. */
  chatTemplate: string;
  /** Every GGUF key/value pair as llama.cpp renders it (arrays abbreviated by llama.cpp). */
  metadata: Record<string, string>;
  /**
   * MiB of the weights per buffer type, as llama.cpp's load logs them: "CPU_REPACK" holds weights
   * repacked for the CPU backend's own products (Q8_0 with AVX512-VNNI: native/patches).
   */
  weightBuffersMiB: Record<string, number>;
}

export interface ContextOptions {
  /** KV cells shared by all sequences (one unified cache; llama's n_ctx). */
  kvCells: number;
  /** Largest sequence id + 1 (running sequences and cached prefixes each take one id). */
  nSeqMax: number;
  /** Most tokens one step takes (llama's n_batch): prompt tokens plus decode rows. */
  batchCapacity: number;
  nUbatch: number;
  flashAttn?: FlashAttention;
  typeK?: KvCacheType | "f32";
  typeV?: KvCacheType | "f32";
  threads?: number;
  /** Context that returns pooled embeddings instead of logits. */
  embeddings?: boolean;
  pooling?: "model" | "mean" | "cls" | "last" | "none";
}

export interface SamplerParams {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  typicalP: number;
  seed: number;
  repeatLastN: number;
  repeatPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** token id -> bias added to its logit (-Infinity bans it). */
  logitBias?: Array<[number, number]>;
  /** GBNF grammar with root rule `root`. */
  grammar?: string;
  /**
   * Makes the grammar lazy (llama.cpp's lazy grammar sampler): decoding is free until the text
   * generated so far matches one of `patterns` (ECMAScript regular expressions; the grammar reads
   * from the first capture group, else the match) or one of `tokens` is sampled.
   */
  grammarTriggers?: { patterns: string[]; tokens: number[] };
  /** Text the prompt ended with that a non-lazy grammar reads before the first sampled token. */
  grammarPrefix?: string;
  /** Number of top alternatives to report with each sampled token (0 = no logprobs). */
  topLogprobs?: number;
  /** Report the sampled token's logprob (implied by topLogprobs > 0). */
  logprobs?: boolean;
  /** End-of-generation tokens are masked until this many tokens were generated. */
  minTokens?: number;
}

/**
 * One step: a batch of tokens of many sequences. Entry i is token `tokens[i]` of sequence
 * `seqIds[i]` at position `positions[i]`; `sample[i] = 1` asks for the next token of that
 * sequence to be sampled from this entry's logits (its sequence must have a sampler).
 * `accept[i] = 1` feeds a prompt token to the sequence's penalty window without sampling.
 */
export interface StepPlanArrays {
  tokens: Int32Array;
  positions: Int32Array;
  seqIds: Int32Array;
  sample: Uint8Array;
}

/** What sampling gave, one entry per row (a step's sampled rows, or a pickDeferred call's sequences). */
export interface SampledArrays {
  /** The token; -1 in a step: its grammar refused the sampler's choice and the pick is deferred (pickDeferred); -1 from pickDeferred: the pick was cancelled. */
  sampledTokens: Int32Array;
  /** logprob of each sampled token (NaN when not requested). */
  sampledLogprobs: Float32Array;
  /** topLogprobs ids/logprobs per row, `topN` wide (rows without logprobs are filled with -1/NaN). */
  topN: number;
  topIds: Int32Array;
  topLogprobs: Float32Array;
}

export interface StepResult extends SampledArrays {
  /** "ok", or "no_room": the KV cache had no free cells for the batch; nothing was decoded. */
  status: "ok" | "no_room";
  /** One entry per sampled row, in the order of the plan's entries with sample = 1. */
  sampledSeqIds: Int32Array;
  /** Time spent in llama_decode and in sampling, in nanoseconds. */
  decodeNs: number;
  sampleNs: number;
}

/** The deferred picks of a pickDeferred call, one row per sequence asked, in order. */
export interface PickResult extends SampledArrays {
  sampleNs: number;
}

export interface EmbedResult {
  status: "ok" | "no_room";
  /** Pooled embeddings of the plan's sequences with sample = 1 (mark every token of a sequence
   * for pooled models; its last token for pooling "none"), `nEmbd` floats each, in plan order. */
  seqIds: Int32Array;
  embeddings: Float32Array;
  nEmbd: number;
}

/** A prompt's text between media, as the model's tokens. */
export interface TextChunk {
  type: "text";
  tokens: Int32Array;
}

/** One image (or audio clip) of a prompt, as the projector will encode it. */
export interface NativeMediaChunk {
  type: "image" | "audio";
  /** Embedding rows it becomes (KV cells it takes). */
  nTokens: number;
  /** Positions it advances the sequence by (fewer than nTokens with M-RoPE). */
  nPos: number;
  /**
   * SHA-256 (hex) of the encoded file: the same image has the same id. mtmd gives it to each of a
   * file's chunks, tiles included (the engine keys them apart: media.ts withChunkIds).
   */
  id: string;
  /** Its rows attend to each other both ways (Gemma 3): they must be decoded in one micro-batch. */
  nonCausal: boolean;
  /** Positions of its rows when it starts at pos0: nTokens of them, or 4 x nTokens (dimension-major) with M-RoPE. */
  positions(pos0: number): Int32Array;
}

export type PromptChunk = TextChunk | NativeMediaChunk;

/**
 * A media file already prepared (NativeProjector.prepare), given to tokenize() in its place: its
 * id and size, no pixels. Its chunks come back as placeholders: they count and key like the
 * file's chunks, and cannot be encoded.
 */
export interface MediaPlaceholder {
  /** SHA-256 (hex) of the file (of its pixels as a PPM for a WebP). */
  id: string;
  /** Pixels (samples for audio). */
  width: number;
  height: number;
  audio: boolean;
}

/** A media file decoded and preprocessed once: the media chunks it becomes at a marker, in order. */
export interface PreparedMedia extends MediaPlaceholder {
  chunks: NativeMediaChunk[];
}

export interface MediaPrepareOptions {
  /** Files with more pixels than this are refused before decoding. Default 2^26. */
  maxPixels?: number;
  /** What errors call the file ("image 2"). Default "media". */
  name?: string;
}

export interface MediaTokenizeOptions {
  /** Add the model's BOS (as the model's own tokenizer would). Default false. */
  addSpecial?: boolean;
  /** Special-token text in `text` becomes special tokens. Default true. */
  parseSpecial?: boolean;
  /** Images with more pixels than this are refused before decoding. Default 2^26. */
  maxPixels?: number;
}

/** A model's multimodal projector (llama.cpp's mtmd). */
export interface NativeProjector {
  readonly vision: boolean;
  readonly audio: boolean;
  /** The model takes M-RoPE positions (Qwen2-VL and later): see NativeMediaChunk.positions. */
  readonly mrope: boolean;
  /** The text that stands for one media item in tokenize()'s text. */
  readonly marker: string;
  /** Floats per embedding row (the model's input embedding width). */
  readonly embeddingLength: number;
  /** Splits `text` at its markers, each replaced by the next of `media` (encoded PNG, JPEG, GIF, BMP... files, or placeholders of prepared ones); off the JS thread. */
  tokenize(text: string, media: Array<Uint8Array | MediaPlaceholder>, options?: MediaTokenizeOptions): Promise<PromptChunk[]>;
  /** Decodes and preprocesses a media file once, off the JS thread; tokenize() then takes its placeholder. */
  prepare(file: Uint8Array, options?: MediaPrepareOptions): Promise<PreparedMedia>;
  /** The chunk's nTokens embedding rows, computed off the JS thread (one encode at a time). */
  encode(chunk: NativeMediaChunk): Promise<Float32Array>;
  dispose(): Promise<void>;
}

/** Embedding rows, each of its own sequence, decoded as one llama_decode (see NativeContext.decodeEmbeddings). */
export interface EmbeddingRows {
  /** The sequence of each row. */
  seqIds: Int32Array;
  /** n rows of the model's input embedding width. */
  embeddings: Float32Array;
  /** n positions, 4 x n (dimension-major) for M-RoPE models: another length is refused. */
  positions: Int32Array;
  nonCausal: boolean;
}

export interface NativeModel {
  readonly info: ModelInfo;
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
  /** The same on a libuv worker thread; the model cannot be disposed until it settles. */
  tokenizeAsync(text: string, addSpecial: boolean, parseSpecial: boolean): Promise<Int32Array>;
  detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string;
  /** Raw bytes of a token's text (may be part of a multi-byte character). */
  tokenBytes(token: number, special: boolean): Uint8Array;
  isEog(token: number): boolean;
  /** Bytes free and in all of the model's GPUs now (0 and 0 when it runs on the CPU only). */
  deviceMemory(): { free: number; total: number };
  createContext(options: ContextOptions): Promise<NativeContext>;
  /** Loads a projector (mmproj GGUF) made for this model; the model cannot be disposed before it. */
  loadProjector(path: string, options?: { threads?: number }): Promise<NativeProjector>;
  dispose(): Promise<void>;
}

/** Bytes one ggml device holds for a context (llama.cpp's memory breakdown, read at creation). */
export interface DeviceMemory {
  /** ggml's device name: "CPU", "CUDA0", "RPC0"... */
  device: string;
  /** An RPC device's is its worker's "host:port". */
  description: string;
  /** The model's weights on this device. */
  modelBytes: number;
  /** The context's KV cache on this device. */
  contextBytes: number;
  computeBytes: number;
}

export interface NativeContext {
  readonly kvCells: number;
  readonly nSeqMax: number;
  readonly batchCapacity: number;
  /** Rows of one micro-batch (llama's n_ubatch): rows that attend both ways must fit one. */
  readonly nUbatch: number;
  readonly memoryByDevice: DeviceMemory[];
  setSampler(seqId: number, params: SamplerParams): void;
  clearSampler(seqId: number): void;
  /** Feed tokens already in the KV cache to the repeat-penalty window (and the grammar). */
  acceptTokens(seqId: number, tokens: Int32Array, grammar: boolean): void;
  step(plan: StepPlanArrays): Promise<StepResult>;
  /**
   * The constrained picks steps deferred (sampledTokens -1), on a worker of their own, one call
   * at a time: steps go on meanwhile (a sequence awaiting its pick may not be in them), and
   * the context cannot be disposed until it settles.
   */
  pickDeferred(seqIds: Int32Array): Promise<PickResult>;
  /** Ends the sequence's deferred pick (running or not yet asked for) with token -1; allowed while a step runs. */
  cancelPick(seqId: number): void;
  embed(plan: StepPlanArrays): Promise<EmbedResult>;
  /** Decodes media chunks' rows into their sequences (llama_decode takes tokens or embeddings per call). */
  decodeEmbeddings(rows: EmbeddingRows): Promise<{ status: "ok" | "no_room"; decodeNs: number }>;
  seqRemove(seqId: number, p0: number, p1: number): boolean;
  seqCopy(src: number, dst: number, p0: number, p1: number): void;
  seqKeep(seqId: number): void;
  seqPosMin(seqId: number): number;
  seqPosMax(seqId: number): number;
  clear(): void;
  dispose(): Promise<void>;
}

export interface NativeAddon {
  /** Loads ggml backends once; returns the devices found and the chosen backend. */
  init(gpu: GpuChoice, backendDir: string): { backend: "cuda" | "cpu"; devices: BackendDevice[]; systemInfo: string; cpuBackendFile: string };
  loadModel(path: string, options: LoadModelOptions): Promise<NativeModel>;
  /** GBNF for a JSON schema, checked by llama.cpp's grammar parser; runs off the JS thread. */
  jsonSchemaToGrammar(schemaJson: string): Promise<string>;
  /** llama.cpp's chat library over a Jinja chat template (parsed off the JS thread); rejects with ERR_CHAT_TEMPLATE. */
  chatTemplates(source: string, bosToken: string, eosToken: string): Promise<NativeChatTemplates>;
  /** Bytes of native memory held by live models and contexts (for leak tests). */
  liveObjects(): { models: number; contexts: number; projectors: number };
}

/** llama.cpp's chat library over one chat template (common/chat.h): every model family's tool-call syntax. */
export interface NativeChatTemplates {
  /**
   * common_chat_templates_apply off the JS thread. `inputs` is JSON: `messages` and `tools` in
   * OpenAI's chat shapes, `tool_choice` ("auto" | "required" | "none"), `parallel_tool_calls`,
   * `enable_thinking`, `reasoning_format` ("none" | "auto" | "deepseek"), `add_generation_prompt`.
   * `params` is JSON (ChatLibraryParams); the parser reads the answer to this prompt.
   * Rejects with ERR_CHAT_TEMPLATE (the template threw, or the library refused the inputs).
   */
  apply(inputs: string): Promise<{ params: string; parser: NativeChatParser }>;
  dispose(): void;
}

/** The library's parser for one applied prompt's answer. */
export interface NativeChatParser {
  /**
   * common_chat_parse off the JS thread: JSON `{content, reasoning_content, tool_calls: [{name,
   * arguments, id}]}`. `isPartial` while the answer still streams; a finished answer that does not
   * match the format rejects with ERR_CHAT_PARSE.
   */
  parse(text: string, isPartial: boolean): Promise<string>;
}
