// The KV manager allocates: it owns the accounting of the unified KV cache's cells, the pool of
// sequence ids, and the prefix cache. It never decides what runs; the scheduler asks it.
//
// Cells are counted, not located: llama.cpp places a batch's cells itself. A cell is either
// private to one running sequence, or belongs to a block of the prefix cache (BLOCK_SIZE tokens,
// counted once however many sequences share it).
//
// A block also ends where an image ends (blockEnd), so an image's last rows are a block of their
// own, shared by the next prompt with that image whatever text follows it. With blocks of
// BLOCK_SIZE only, those rows shared a block with the text after them, and every request of a
// burst on one image recomputed them: 32 requests on a 256-row image after 7 tokens of text
// recomputed 7 rows each, 217 rows in a call of 272 ms (CPU, llama110m-vision, 2026-12-02).
//
// Idle cached blocks are not free to keep: llama.cpp's attention visits every resident cell of
// the unified cache for every token of every step (masked, but visited), so a cache full of idle
// prefixes slows all running work (measured on CPU, llama110m, 32 sequences: 8,192 idle cells
// cost 20% of decode and 30% of prefill speed). `trimIdle` bounds that cost.
//
// With the prefix cache off, the choices of one request (OpenAI's `n`, RequestInit.promptGroup)
// still share their prompt's blocks: in a tree of their own that no other request sees, whose
// blocks go as soon as no choice uses them or will soon.
//
// Cache operations address cells by position, the manager counts them by token index: the two
// differ after an M-RoPE image (Qwen2-VL and later), whose nx x ny rows all sit at the image's
// start position and advance the positions after it by max(nx, ny) (media.ts positionAt). A
// range can start or end only where the position rises, never between two rows of one image, so
// a block that ends inside such an image is a path in the tree but no prefix ends with it (see
// Block.endsInsideImage). Equal tokens give equal positions (an image's placeholders stand for
// its content, hence its grid), so a shared block's cells sit where the sequence that attaches
// would have put them.
//
// With `events`, the blocks that enter or leave the prefix cache are reported (vLLM's KV
// events, for a prefix-cache-aware router), under the chained hash a router computes itself from
// a prompt's tokens in blocks of BLOCK_SIZE: so only such blocks, from the first on. A block cut
// short where an image ends, and every block after it, is a hash no router computes.
import type { ModelKvEvents } from "../kv-events/publisher.js";
import { positionAt, type MediaSpan } from "./media.js";

/**
 * A change to the native KV cache that the manager decided (positions [p0, p1), -1 = open end).
 * The manager only records them; the scheduler puts them in the next plan, and the executor
 * applies them in this order before that plan's tokens decode.
 */
export type CacheOp =
  | { kind: "copy"; src: number; dst: number; p0: number; p1: number }
  | { kind: "remove"; seqId: number; p0: number; p1: number };

const NO_CACHE_OPS: readonly CacheOp[] = Object.freeze([]);

export const BLOCK_SIZE = 16;

/**
 * How many computed tokens an idle block may sit through before it is dropped: about where the
 * steps have paid as much for visiting its cells as recomputing it would cost (ski rental).
 * Recomputing a token costs ~2 x parameters; visiting a cell costs a mask check per layer and
 * head. Calibrated on CPU with llama110m (break-even measured at 7,000-12,000 tokens).
 */
export function idleBlockTokens(model: { parameterCount: number; layerCount: number; embeddingLength: number }): number {
  const perCell = Math.max(1, model.layerCount * model.embeddingLength);
  return Math.max(BLOCK_SIZE, Math.round((0.75 * model.parameterCount) / perCell));
}

/** One cached block: token indices [start, end), BLOCK_SIZE of them or fewer where an image ends. */
interface Block {
  key: string;
  parent: Block | undefined;
  children: Map<string, Block>;
  start: number;
  end: number;
  /** Positions of its cells: [p0, p1) (not its token indices after an M-RoPE image). */
  p0: number;
  p1: number;
  /**
   * Its end falls between two rows of an M-RoPE image (they share one position): no cache
   * operation can end there, so no prefix ends with this block, and its holder's cells of that
   * image may go when the holder's later blocks do (never copied from, they need not stay).
   */
  endsInsideImage: boolean;
  /** A sequence id whose cells hold token indices [0, end of this block): copy from it to share. */
  holder: number;
  /** Running sequences that use this block (pinned while > 0). */
  refs: number;
  /** `tokensComputed` when a sequence last used it; a parent is never older than its children. */
  lastUsed: number;
  /** The block's chained hash, when events are reported. */
  hash?: bigint;
}

function newTree(): Block {
  return { key: "", parent: undefined, children: new Map(), start: 0, end: 0, p0: 0, p1: 0, endsInsideImage: false, holder: -1, refs: 1, lastUsed: 0 };
}

/** What a running sequence holds in the cache. */
export interface KvLease {
  seqId: number;
  /** The root of the blocks it shares (treeOf), if it shares any. */
  tree: Block | undefined;
  /** Blocks this sequence pins, root first. */
  blocks: Block[];
  /** Tokens whose cells are counted in blocks (shared); the rest up to `cells` are private. */
  sharedTokens: number;
  /** Token indices [0, cells) of this sequence are in the cache. */
  cells: number;
  /** The sequence's images: where its positions part from its token indices. */
  media: readonly MediaSpan[] | undefined;
}

export interface KvStats {
  kvCells: number;
  usedCells: number;
  cachedBlocks: number;
  /** Cells of cached blocks that no running sequence uses. */
  idleCells: number;
  prefixQueries: number;
  prefixHits: number;
}

function blockKey(tokens: ArrayLike<number>, start: number, end: number): string {
  let key = "";
  for (let i = start; i < end; i++) key += `${tokens[i]},`;
  return key;
}

/** Where the block that starts at token index `start` ends: BLOCK_SIZE tokens on, or at the end of an image before that. */
function blockEnd(media: readonly MediaSpan[] | undefined, start: number): number {
  const end = start + BLOCK_SIZE;
  for (const span of media ?? []) {
    if (span.start >= end) break;
    const spanEnd = span.start + span.chunk.nTokens;
    if (spanEnd > start && spanEnd < end) return spanEnd;
  }
  return end;
}

/** The end of the last whole block within a prompt's first `n` tokens: how much of them a block can share. */
export function wholeBlocksWithin(media: readonly MediaSpan[] | undefined, n: number): number {
  let end = 0;
  for (let next = blockEnd(media, 0); next <= n; next = blockEnd(media, next)) end = next;
  return end;
}

function cellsOf(blocks: Iterable<Block>): number {
  let cells = 0;
  for (const b of blocks) cells += b.end - b.start;
  return cells;
}

/** A prompt the prefix cache is asked about (a sequence is one). */
export interface KvPrompt {
  tokens: ArrayLike<number>;
  /** Its images (media.ts): their rows' placeholders key blocks by content, their grids set positions. */
  media?: readonly MediaSpan[];
  promptGroup?: object;
}

/** Whether token index `index` falls between two cells at one position (rows of an M-RoPE image): no range can start or end there. */
function splitsImage(media: readonly MediaSpan[] | undefined, index: number): boolean {
  return index > 0 && media !== undefined && media.length > 0 && positionAt(media, index - 1) === positionAt(media, index);
}

export class KvManager {
  private readonly root = newTree();
  /** With the prefix cache off: each request's choices' own tree (RequestInit.promptGroup). */
  private readonly groupTrees = new WeakMap<object, Block>();
  private readonly freeSeqIds: number[];
  /** Sequence ids that hold cached blocks but no running sequence: seqId -> blocks held. */
  private readonly holders = new Map<number, number>();
  private readonly blocks = new Set<Block>();
  /** Cells of all cached blocks, and of those a running sequence uses. */
  private blockCells = 0;
  private pinnedCells = 0;
  private privateCells = 0;
  /** Tokens computed by all steps so far: the clock of the prefix cache. */
  private tokensComputed = 0;
  private queries = 0;
  private hits = 0;
  /** Cache operations decided since the last takeCacheOps(), in order. */
  private cacheOps: CacheOp[] = [];

  constructor(
    readonly kvCells: number,
    nSeqIds: number,
    readonly prefixCaching = true,
    /** See idleBlockTokens(). */
    private readonly idleTokens = Infinity,
    private readonly events?: ModelKvEvents,
  ) {
    this.freeSeqIds = Array.from({ length: nSeqIds }, (_, i) => nSeqIds - 1 - i);
  }

  get freeCells(): number {
    return this.kvCells - this.privateCells - this.blockCells;
  }

  get idleCells(): number {
    return this.blockCells - this.pinnedCells;
  }

  stats(): KvStats {
    return {
      kvCells: this.kvCells,
      usedCells: this.kvCells - this.freeCells,
      cachedBlocks: this.blocks.size,
      idleCells: this.idleCells,
      prefixQueries: this.queries,
      prefixHits: this.hits,
    };
  }

  /** The cache operations decided since the last call, in order (the plan carries them). */
  takeCacheOps(): readonly CacheOp[] {
    if (this.cacheOps.length === 0) return NO_CACHE_OPS;
    const ops = this.cacheOps;
    this.cacheOps = [];
    return ops;
  }

  /** Cached tokens a prompt would reuse (whole blocks, at most prompt.length - 1). */
  matchLength(prompt: KvPrompt): number {
    return this.matchBlocks(prompt).at(-1)?.end ?? 0;
  }

  /** Whether sequences of these prompt groups share cached blocks: all do with the prefix cache on. */
  shareBlocks(group: object | undefined, other: object | undefined): boolean {
    return this.prefixCaching || (group !== undefined && group === other);
  }

  /**
   * Gives a new sequence its id and attaches it to the longest cached prefix of `prompt`
   * (cells shared, not recomputed). Returns undefined when no sequence id is free even after
   * evicting cached prefixes.
   */
  open(prompt: KvPrompt): KvLease | undefined {
    const seqId = this.takeSeqId();
    if (seqId === undefined) return undefined;
    const blocks = this.matchBlocks(prompt);
    const last = blocks.at(-1);
    const shared = last?.end ?? 0;
    this.queries += prompt.tokens.length;
    this.hits += shared;
    for (const b of blocks) this.pin(b);
    if (last) this.recordCopy(last.holder, seqId, 0, last.p1);
    return { seqId, tree: this.treeOf(prompt.promptGroup), blocks, sharedTokens: shared, cells: shared, media: prompt.media };
  }

  /** Counts `n` more private cells for the sequence (the scheduler checked freeCells). */
  grow(lease: KvLease, n: number): void {
    lease.cells += n;
    this.privateCells += n;
  }

  /** Frees cells that the scheduler asked for but the step did not use (no_room). */
  shrink(lease: KvLease, n: number): void {
    lease.cells -= n;
    this.privateCells -= n;
  }

  /**
   * After a step: the sequence's newly completed full blocks of `tokens` enter the prefix
   * cache, so later requests (even while this one still runs) can share them.
   */
  commit(lease: KvLease, tokens: ArrayLike<number>): void {
    if (!lease.tree) return;
    let parent = lease.blocks.at(-1) ?? lease.tree;
    for (let start = lease.sharedTokens, end = blockEnd(lease.media, start); end <= lease.cells; start = end, end = blockEnd(lease.media, start)) {
      const key = blockKey(tokens, start, end);
      let block = parent.children.get(key);
      if (block) {
        // Computed twice (two requests prefilled the same prefix at once): keep the cached
        // cells, drop ours, and share theirs so this sequence's holder invariant still holds.
        // Where the block starts or ends inside an M-RoPE image its cells cannot be swapped
        // alone: this sequence keeps its own cells, and shares no more blocks (a rare race).
        if (parent.endsInsideImage || block.endsInsideImage) return;
        this.recordRemove(lease.seqId, block.p0, block.p1);
        this.recordCopy(block.holder, lease.seqId, block.p0, block.p1);
        this.privateCells -= end - start;
      } else {
        block = {
          key, parent, children: new Map(), start, end, p0: parent.p1, p1: positionAt(lease.media, end),
          endsInsideImage: splitsImage(lease.media, end), holder: lease.seqId, refs: 0, lastUsed: this.tokensComputed,
        };
        if (this.events && lease.tree === this.root && end - start === BLOCK_SIZE && (parent === this.root || parent.hash !== undefined)) {
          this.report(block, tokens, this.events);
        }
        parent.children.set(key, block);
        this.blocks.add(block);
        this.blockCells += end - start;
        this.privateCells -= end - start;
      }
      this.pin(block);
      lease.blocks.push(block);
      lease.sharedTokens = end;
      parent = block;
    }
  }

  /**
   * The sequence ends (finished, cancelled or preempted): its private cells are freed, its
   * cached blocks stay (unpinned) for later requests until evicted.
   */
  close(lease: KvLease): void {
    for (const b of lease.blocks) this.unpin(b);
    this.privateCells -= lease.cells - lease.sharedTokens;
    const held = lease.blocks.filter((b) => b.holder === lease.seqId).length;
    if (held > 0) {
      // From the end of its last block: inside an M-RoPE image, from the image's start (see Block.endsInsideImage).
      this.recordRemove(lease.seqId, lease.blocks.at(-1)!.p1, -1);
      this.holders.set(lease.seqId, held);
    } else {
      this.recordRemove(lease.seqId, -1, -1);
      this.freeSeqIds.push(lease.seqId);
    }
    lease.blocks = [];
    lease.cells = lease.sharedTokens = 0;
  }

  /** Steps computed `tokens` more tokens: the prefix cache's clock advances. */
  advance(tokens: number): void {
    this.tokensComputed += tokens;
  }

  /**
   * Drops idle blocks beyond `maxIdleCells` (all of them with the prefix cache off), and those
   * idle for longer than `idleTokens` computed tokens, least recently used first. Blocks that
   * one of the `upcoming` prompts would reuse are kept (and not counted as idle).
   */
  trimIdle(maxIdleCells: number, upcoming: readonly KvPrompt[] = []): void {
    // Runs every step: at full load nothing is idle, and matching the upcoming prompts is skipped.
    if (this.idleCells === 0) return;
    if (!this.prefixCaching) maxIdleCells = 0;
    const oldest = this.tokensComputed - this.idleTokens;
    const keep = new Set(upcoming.flatMap((p) => this.matchBlocks(p).filter((b) => b.refs === 0)));
    const keptCells = cellsOf(keep);
    const idle = () => this.idleCells - keptCells;
    if (idle() <= maxIdleCells && !this.hasIdleOlderThan(oldest, keep)) return;
    this.evictWhile((next) => idle() > maxIdleCells || next.lastUsed < oldest, keep);
  }

  /**
   * Evicts least-recently-used unpinned cached blocks until `cells` are free; the blocks that
   * `starting` (a prompt about to start) would reuse stay.
   */
  evict(cells: number, starting?: KvPrompt): boolean {
    if (this.freeCells < cells) {
      const keep = starting && new Set(this.matchBlocks(starting));
      this.evictWhile(() => this.freeCells < cells, keep);
    }
    return this.freeCells >= cells;
  }

  /** Drops the whole prefix cache that no running sequence uses. */
  evictAll(): void {
    this.evictWhile(() => true);
  }

  private recordCopy(src: number, dst: number, p0: number, p1: number): void {
    this.cacheOps.push({ kind: "copy", src, dst, p0, p1 });
  }

  private recordRemove(seqId: number, p0: number, p1: number): void {
    this.cacheOps.push({ kind: "remove", seqId, p0, p1 });
  }

  private takeSeqId(): number | undefined {
    if (this.freeSeqIds.length === 0) this.evictWhile(() => this.freeSeqIds.length === 0);
    return this.freeSeqIds.pop();
  }

  private hasIdleOlderThan(time: number, keep: Set<Block>): boolean {
    for (const b of this.blocks) if (b.refs === 0 && b.lastUsed < time && !keep.has(b)) return true;
    return false;
  }

  private pin(block: Block): void {
    if (block.refs++ === 0) this.pinnedCells += block.end - block.start;
    block.lastUsed = this.tokensComputed;
  }

  private unpin(block: Block): void {
    if (--block.refs === 0) this.pinnedCells -= block.end - block.start;
    block.lastUsed = this.tokensComputed;
  }

  /**
   * Evicts unpinned blocks, least recently used first, while `more(next)` holds for the next
   * one, `keep` aside. Children go before their parents: they are never used more recently,
   * and on a tie the deeper block goes first.
   */
  private evictWhile(more: (next: Block) => boolean, keep?: Set<Block>): void {
    const candidates = [...this.blocks].filter((b) => b.refs === 0 && !keep?.has(b)).sort((a, b) => a.lastUsed - b.lastUsed || b.start - a.start);
    for (const block of candidates) {
      if (!more(block)) return;
      this.drop(block);
    }
  }

  private report(block: Block, tokens: ArrayLike<number>, events: ModelKvEvents): void {
    const blockTokens = Array.prototype.slice.call(tokens, block.start, block.end) as number[];
    block.hash = events.hash(block.parent!.hash, blockTokens);
    events.stored(block.hash, block.parent!.hash, blockTokens);
  }

  private drop(block: Block): void {
    block.parent!.children.delete(block.key);
    this.blocks.delete(block);
    this.blockCells -= block.end - block.start;
    if (block.hash !== undefined) this.events?.removed(block.hash);
    this.recordRemove(block.holder, block.p0, -1);
    const held = this.holders.get(block.holder);
    if (held === undefined) return;
    if (held > 1) {
      this.holders.set(block.holder, held - 1);
    } else {
      this.holders.delete(block.holder);
      this.recordRemove(block.holder, -1, -1);
      this.freeSeqIds.push(block.holder);
    }
  }

  /** The tree a prompt's blocks are shared in: the prefix cache, or its request's own; none without either. */
  private treeOf(group: object | undefined): Block | undefined {
    if (this.prefixCaching) return this.root;
    if (group === undefined) return undefined;
    let tree = this.groupTrees.get(group);
    if (!tree) {
      tree = newTree();
      this.groupTrees.set(group, tree);
    }
    return tree;
  }

  private matchBlocks(prompt: KvPrompt): Block[] {
    const blocks: Block[] = [];
    const tree = this.treeOf(prompt.promptGroup);
    if (!tree) return blocks;
    let node = tree;
    // Leave at least one prompt token to evaluate: its logits give the first generated token.
    for (let start = 0, end = blockEnd(prompt.media, 0); end < prompt.tokens.length; start = end, end = blockEnd(prompt.media, start)) {
      const next = node.children.get(blockKey(prompt.tokens, start, end));
      if (!next) break;
      blocks.push(next);
      node = next;
    }
    // A prefix ends where a cache operation can: not inside an M-RoPE image.
    while (blocks.at(-1)?.endsInsideImage) blocks.pop();
    return blocks;
  }
}
