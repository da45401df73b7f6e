// A prompt's images in a sequence. An image chunk of n embedding rows takes n positions of the
// sequence's tokens, each held by a placeholder: a negative id (never a vocabulary token) that
// stands for the image's content hash. So the prefix cache, which keys blocks by token ids, keys
// image blocks by content: the same image in a follow-up turn or in many requests at once is
// computed once. The rows themselves are computed by the projector when the step loop reaches
// the span (executor.ts), and decoded as their own llama_decode (llama.cpp's batch takes tokens
// or embeddings, never both).
import { BadRequestError } from "../api/errors.js";
import { toTypedError, type NativeMediaChunk, type NativeProjector, type PromptChunk } from "../native/index.js";

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
 * Positions of rows `offset` to `offset + count` of a span: a row's position is its index in the
 * sequence (the runner refuses M-RoPE projectors, whose rows advance positions otherwise).
 */
export function rowPositions(span: MediaSpan, offset: number, count: number): Int32Array {
  return span.chunk.positions(span.start).subarray(offset, offset + count);
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
 * images are encoded files. Refuses a format that is not read, what cannot be decoded or is too
 * large for a step, and a prompt that ends with an image (its last token's logits give the first
 * answer token).
 */
export async function tokenizeWithMedia(
  projector: NativeProjector,
  ids: MediaIds,
  text: string,
  images: Uint8Array[],
  addSpecial: boolean,
  limits: MediaLimits,
): Promise<MediaPrompt> {
  images.forEach(refuseUnreadFormat);
  let chunks: PromptChunk[];
  try {
    chunks = await projector.tokenize(text, images, { addSpecial, parseSpecial: true });
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
