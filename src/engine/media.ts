// A prompt's images in a sequence. An image chunk of n embedding rows takes n positions of the
// sequence's tokens, each held by a placeholder: a negative id (never a vocabulary token) that
// stands for the image's content hash. So the prefix cache, which keys blocks by token ids, keys
// image blocks by content: the same image in a follow-up turn or in many requests at once is
// computed once. The rows themselves are computed by the projector when the step loop reaches
// the span (executor.ts), and decoded as their own llama_decode (llama.cpp's batch takes tokens
// or embeddings, never both).
import { BadRequestError } from "../api/errors.js";
import { toTypedError, type NativeMediaChunk, type NativeProjector, type PreparedMedia, type PromptChunk } from "../native/index.js";
import type { PrepareFile } from "./prepared-media.js";

/** One media chunk's rows in a sequence: positions [start, start + chunk.nTokens). */
export interface MediaSpan {
  start: number;
  chunk: NativeMediaChunk;
}

export interface MediaPrompt {
  tokens: number[];
  media: MediaSpan[];
}

/** Placeholder ids by content hash, for one model's runner (its prefix cache): -1, -2, ... */
export class MediaIds {
  private readonly ids = new Map<string, number>();

  of(hash: string): number {
    let id = this.ids.get(hash);
    if (id === undefined) {
      id = -(this.ids.size + 1);
      this.ids.set(hash, id);
    }
    return id;
  }
}

export function isMediaPlaceholder(token: number): boolean {
  return token < 0;
}

/** The span holding position `pos`, if any (spans are in position order). */
export function mediaSpanAt(media: readonly MediaSpan[] | undefined, pos: number): MediaSpan | undefined {
  return media?.find((s) => pos >= s.start && pos < s.start + s.chunk.nTokens);
}

/**
 * How many of `count` tokens from `start` one plan entry may take: an entry is either text or the
 * (rest of the) rows of one media span, never both, and a span's rows go in one call (rows that
 * attend to each other both ways must). Text stops where a span starts; a span's rest is taken
 * whole, or not at all (0) when `count` is smaller.
 */
export function fitToMedia(media: readonly MediaSpan[] | undefined, start: number, count: number): number {
  for (const span of media ?? []) {
    const end = span.start + span.chunk.nTokens;
    if (end <= start) continue;
    if (span.start >= start + count) break;
    if (span.start > start) return span.start - start;
    return end - start <= count ? end - start : 0;
  }
  return count;
}

/**
 * The model position of the token at sequence index `index` (its KV cell's position). A span's
 * chunk takes nTokens cells but advances positions by nPos: the same with ordinary positions, and
 * with M-RoPE (Qwen2-VL and later) an image of nx x ny rows advances them by max(nx, ny), every
 * row at the image's start position (its grid place goes in the other M-RoPE dimensions), as
 * llama.cpp's mtmd_helper_eval_chunks counts. So text after such an image sits
 * nTokens - nPos positions before its index.
 */
export function positionAt(media: readonly MediaSpan[] | undefined, index: number): number {
  let shift = 0;
  for (const span of media ?? []) {
    if (index < span.start) break;
    if (index < span.start + span.chunk.nTokens) return span.chunk.positions(span.start - shift)[index - span.start]!;
    shift += span.chunk.nTokens - span.chunk.nPos;
  }
  return index - shift;
}

/**
 * Positions of rows `offset` to `offset + count` of a span, as llama_batch takes them: one per
 * row, or with M-RoPE four per row, dimension-major (t, y, x, z), each dimension sliced alike.
 */
export function rowPositions(media: readonly MediaSpan[], span: MediaSpan, offset: number, count: number): Int32Array {
  const all = span.chunk.positions(positionAt(media, span.start));
  const rows = span.chunk.nTokens;
  const dimensions = all.length / rows;
  const out = new Int32Array(dimensions * count);
  for (let d = 0; d < dimensions; d++) out.set(all.subarray(d * rows + offset, d * rows + offset + count), d * count);
  return out;
}

/**
 * Formats, by their file signatures, that neither stb_image (PNG, JPEG, GIF, BMP, and a few
 * older ones) nor libwebp (native/projector.cpp) reads: named in the 400 instead of "cannot be
 * decoded".
 */
const UNREAD_FORMATS: ReadonlyArray<[name: string, matches: (head: string) => boolean]> = [
  ["TIFF", (head) => head.startsWith("II*\0") || head.startsWith("MM\0*")],
  ["HEIC", (head) => head.slice(4, 8) === "ftyp" && /^(heic|heix|hevc|mif1|msf1)$/.test(head.slice(8, 12))],
  ["AVIF", (head) => head.slice(4, 8) === "ftyp" && /^avi[fs]$/.test(head.slice(8, 12))],
  ["JPEG XL", (head) => head.startsWith("\xff\x0a") || head.startsWith("\0\0\0\x0cJXL ")],
  ["SVG", (head) => /^(\xef\xbb\xbf)?\s*(<\?xml|<svg)/i.test(head)],
  ["PDF", (head) => head.startsWith("%PDF")],
];

const READ_FORMATS = "PNG, JPEG, WebP, GIF (its first frame) or BMP";

function refuseUnreadFormat(image: Uint8Array, index: number): void {
  const head = Buffer.from(image.subarray(0, 64)).toString("latin1");
  const format = UNREAD_FORMATS.find(([, matches]) => matches(head))?.[0];
  if (format) throw new BadRequestError(`image ${index + 1} is ${format}, which is not supported: send ${READ_FORMATS}`);
}

export interface MediaLimits {
  /** Most rows one chunk may have: they are decoded in one call of at most this many. */
  maxRows: number;
  /** Most rows of a chunk whose rows attend both ways (one micro-batch). */
  maxNonCausalRows: number;
}

/**
 * Tokenizes a prompt whose text holds the projector's marker once per image, in order; the
 * images are encoded files, each prepared by `prepare` (decoded and preprocessed: once per
 * content where it keeps them) and tokenized as its placeholder, whose chunks are then the
 * prepared ones. Refuses a format that is not read, what cannot be decoded or is too large for a
 * step, and a prompt that ends with an image (its last token's logits give the first answer token).
 */
export async function tokenizeWithMedia(
  projector: NativeProjector,
  prepare: PrepareFile,
  ids: MediaIds,
  text: string,
  images: Uint8Array[],
  addSpecial: boolean,
  limits: MediaLimits,
): Promise<MediaPrompt> {
  images.forEach(refuseUnreadFormat);
  let chunks: PromptChunk[];
  try {
    const prepared = await Promise.all(images.map((file, i) => prepare(file, `image ${i + 1}`)));
    chunks = withPreparedChunks(await projector.tokenize(text, prepared, { addSpecial, parseSpecial: true }), prepared);
  } catch (error) {
    throw toTypedError(error);
  }
  const prompt: MediaPrompt = { tokens: [], media: [] };
  for (const chunk of chunks) {
    if (chunk.type === "text") {
      prompt.tokens.push(...chunk.tokens);
      continue;
    }
    const limit = chunk.nonCausal ? limits.maxNonCausalRows : limits.maxRows;
    if (chunk.nTokens > limit) {
      throw new BadRequestError(`an image takes ${chunk.nTokens} tokens, more than the ${limit} one step of this model computes (num_batch)`);
    }
    prompt.media.push({ start: prompt.tokens.length, chunk });
    prompt.tokens.push(...new Array<number>(chunk.nTokens).fill(ids.of(chunk.id)));
  }
  if (prompt.tokens.length === 0 || isMediaPlaceholder(prompt.tokens.at(-1)!)) {
    throw new BadRequestError("the prompt must not end with an image");
  }
  return prompt;
}

/**
 * A prompt tokenized with placeholders, each placeholder chunk replaced by the prepared chunk it
 * stands for: `prepared` holds the prompt's files in order, each its chunks in order, as mtmd
 * counts a placeholder's chunks as it counts its file's.
 */
function withPreparedChunks(chunks: PromptChunk[], prepared: PreparedMedia[]): PromptChunk[] {
  const preparedChunks = prepared.flatMap((media) => media.chunks.map((chunk) => ({ fileId: media.id, chunk })));
  let next = 0;
  const out = chunks.map((chunk) => {
    if (chunk.type === "text") return chunk;
    const { fileId, chunk: real } = preparedChunks[next++] ?? {};
    if (!real || fileId !== chunk.id || real.nTokens !== chunk.nTokens || real.nPos !== chunk.nPos) {
      throw new Error(`media chunk ${next} of the prompt is not the one its file was prepared as`);
    }
    return real;
  });
  if (next !== preparedChunks.length) throw new Error(`the prompt took ${next} of its files' ${preparedChunks.length} media chunks`);
  return out;
}

/**
 * A prepared file whose chunks each have an id of their own. mtmd gives every chunk of a file the
 * file's id, and a file that is several chunks is several pictures: LLaVA-1.6, MiniCPM-V and
 * Idefics3 (SmolVLM) cut an image into an overview and tiles. Keyed by the file alone, the encoder
 * cache served the overview's rows for every tile (a tiled tiny-vision image answered otherwise
 * than llama-mtmd-cli, 2026-12-03).
 */
export function withChunkIds(media: PreparedMedia): PreparedMedia {
  if (media.chunks.length > 1) media.chunks.forEach((chunk, k) => (chunk.id = `${media.id}#${k}`));
  return media;
}
