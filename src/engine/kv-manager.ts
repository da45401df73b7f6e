// The KV manager allocates: it owns the accounting of the unified KV cache's cells, the pool of
// sequence ids, and the prefix cache. It never decides what runs; the scheduler asks it.
//
// Cells are counted, not located: llama.cpp places a batch's cells itself. A cell is either
// private to one running sequence, or belongs to a block of the prefix cache (BLOCK_SIZE tokens,
// counted once however many sequences share it).

/** The native KV operations the manager needs (NativeContext satisfies it; tests pass a fake). */
export interface KvOps {
  seqRemove(seqId: number, p0: number, p1: number): boolean;
  seqCopy(src: number, dst: number, p0: number, p1: number): void;
}

export const BLOCK_SIZE = 16;

/** One cached block of BLOCK_SIZE tokens at a fixed depth of the prefix tree. */
interface Block {
  key: string;
  parent: Block | undefined;
  children: Map<string, Block>;
  depth: number; // block index: covers positions [depth * BLOCK_SIZE, (depth + 1) * BLOCK_SIZE)
  /** A sequence id whose cells hold positions [0, end of this block): copy from it to share. */
  holder: number;
  /** Running sequences that use this block (pinned while > 0). */
  refs: number;
  lastUsed: number;
}

/** What a running sequence holds in the cache. */
export interface KvLease {
  seqId: number;
  /** Blocks this sequence pins, root first. */
  blocks: Block[];
  /** Tokens whose cells are counted in blocks (shared); the rest up to `cells` are private. */
  sharedTokens: number;
  /** Positions [0, cells) of this sequence are in the cache. */
  cells: number;
}

export interface KvStats {
  totalCells: number;
  usedCells: number;
  cachedBlocks: number;
  prefixQueries: number;
  prefixHits: number;
}

function blockKey(tokens: ArrayLike<number>, start: number): string {
  let key = "";
  for (let i = start; i < start + BLOCK_SIZE; i++) key += `${tokens[i]},`;
  return key;
}

export class KvManager {
  private readonly root: Block = {
    key: "", parent: undefined, children: new Map(), depth: -1, holder: -1, refs: 1, lastUsed: 0,
  };
  private readonly freeSeqIds: number[];
  /** Sequence ids that hold cached blocks but no running sequence: seqId -> blocks held. */
  private readonly holders = new Map<number, number>();
  private privateCells = 0;
  private blockCount = 0;
  private clock = 0;
  private queries = 0;
  private hits = 0;

  constructor(
    private readonly kv: KvOps,
    readonly totalCells: number,
    nSeqIds: number,
    readonly prefixCaching = true,
  ) {
    this.freeSeqIds = Array.from({ length: nSeqIds }, (_, i) => nSeqIds - 1 - i);
  }

  get freeCells(): number {
    return this.totalCells - this.privateCells - this.blockCount * BLOCK_SIZE;
  }

  stats(): KvStats {
    return {
      totalCells: this.totalCells,
      usedCells: this.totalCells - this.freeCells,
      cachedBlocks: this.blockCount,
      prefixQueries: this.queries,
      prefixHits: this.hits,
    };
  }

  /** Cached tokens a prompt would reuse (whole blocks, at most prompt.length - 1). */
  matchLength(prompt: ArrayLike<number>): number {
    return this.matchBlocks(prompt).length * BLOCK_SIZE;
  }

  /**
   * Gives a new sequence its id and attaches it to the longest cached prefix of `prompt`
   * (cells shared, not recomputed). Returns undefined when no sequence id is free even after
   * evicting cached prefixes.
   */
  open(prompt: ArrayLike<number>): KvLease | undefined {
    const seqId = this.takeSeqId();
    if (seqId === undefined) return undefined;
    const blocks = this.prefixCaching ? this.matchBlocks(prompt) : [];
    const shared = blocks.length * BLOCK_SIZE;
    this.queries += prompt.length;
    this.hits += shared;
    const now = ++this.clock;
    for (const b of blocks) {
      b.refs++;
      b.lastUsed = now;
    }
    if (shared > 0) this.kv.seqCopy(blocks[blocks.length - 1].holder, seqId, 0, shared);
    return { seqId, blocks, sharedTokens: shared, cells: shared };
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
    if (!this.prefixCaching) return;
    const now = ++this.clock;
    let parent = lease.blocks.length ? lease.blocks[lease.blocks.length - 1] : this.root;
    for (let depth = lease.blocks.length; (depth + 1) * BLOCK_SIZE <= lease.cells; depth++) {
      const key = blockKey(tokens, depth * BLOCK_SIZE);
      const start = depth * BLOCK_SIZE;
      let block = parent.children.get(key);
      if (block) {
        // Computed twice (two requests prefilled the same prefix at once): keep the cached
        // cells, drop ours, and share theirs so this sequence's holder invariant still holds.
        this.kv.seqRemove(lease.seqId, start, start + BLOCK_SIZE);
        this.kv.seqCopy(block.holder, lease.seqId, start, start + BLOCK_SIZE);
        this.privateCells -= BLOCK_SIZE;
      } else {
        block = { key, parent, children: new Map(), depth, holder: lease.seqId, refs: 0, lastUsed: now };
        parent.children.set(key, block);
        this.blockCount++;
        this.privateCells -= BLOCK_SIZE;
      }
      block.refs++;
      block.lastUsed = now;
      lease.blocks.push(block);
      lease.sharedTokens = (depth + 1) * BLOCK_SIZE;
      parent = block;
    }
  }

  /**
   * The sequence ends (finished, cancelled or preempted): its private cells are freed, its
   * cached blocks stay (unpinned) for later requests until evicted.
   */
  close(lease: KvLease): void {
    for (const b of lease.blocks) b.refs--;
    this.privateCells -= lease.cells - lease.sharedTokens;
    const held = lease.blocks.filter((b) => b.holder === lease.seqId).length;
    if (held > 0) {
      this.kv.seqRemove(lease.seqId, lease.sharedTokens, -1);
      this.holders.set(lease.seqId, held);
    } else {
      this.kv.seqRemove(lease.seqId, -1, -1);
      this.freeSeqIds.push(lease.seqId);
    }
    lease.blocks = [];
    lease.cells = lease.sharedTokens = 0;
  }

  /** Evicts least-recently-used unpinned cached blocks until `cells` are free. */
  evict(cells: number): boolean {
    while (this.freeCells < cells) {
      if (!this.evictOne()) return false;
    }
    return true;
  }

  /** Drops the whole prefix cache that no running sequence uses. */
  evictAll(): void {
    while (this.evictOne());
  }

  private takeSeqId(): number | undefined {
    while (this.freeSeqIds.length === 0) {
      if (!this.evictOne()) return undefined;
    }
    return this.freeSeqIds.pop();
  }

  private matchBlocks(prompt: ArrayLike<number>): Block[] {
    const blocks: Block[] = [];
    let node = this.root;
    // Leave at least one prompt token to evaluate: its logits give the first generated token.
    for (let start = 0; start + BLOCK_SIZE < prompt.length; start += BLOCK_SIZE) {
      const next = node.children.get(blockKey(prompt, start));
      if (!next) break;
      blocks.push(next);
      node = next;
    }
    return blocks;
  }

  /** Evicts one least-recently-used unpinned leaf block. */
  private evictOne(): boolean {
    let victim: Block | undefined;
    const visit = (b: Block) => {
      for (const c of b.children.values()) {
        if (c.children.size === 0) {
          if (c.refs === 0 && (!victim || c.lastUsed < victim.lastUsed)) victim = c;
        } else {
          visit(c);
        }
      }
    };
    visit(this.root);
    if (!victim) return false;
    victim.parent!.children.delete(victim.key);
    this.blockCount--;
    const start = victim.depth * BLOCK_SIZE;
    this.kv.seqRemove(victim.holder, start, -1);
    const left = (this.holders.get(victim.holder) ?? 0) - 1;
    if (this.holders.has(victim.holder)) {
      if (left > 0) {
        this.holders.set(victim.holder, left);
      } else {
        this.holders.delete(victim.holder);
        this.kv.seqRemove(victim.holder, -1, -1);
        this.freeSeqIds.push(victim.holder);
      }
    }
    return true;
  }
}
