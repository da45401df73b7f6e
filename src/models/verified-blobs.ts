// Which blobs of a store were last seen matching their digest, and as what file (size, mtime,
// inode), so that a blob is hashed again only when it may have changed (finding 9 of issue 13).
//
// The record is one JSON file at the store's root, `<store>/.vllama-verified.json`:
// - beside the store, not in a cache folder, because it describes that store's files: a store
//   moved, copied or shared through VLLAMA_MODELS keeps its record, and one store never trusts
//   another's;
// - one file, not extended attributes on each blob, because Node has no xattr API and not every
//   file system keeps them;
// - at the root, outside `blobs/` and `manifests/`, so Ollama, which reads the same layout, never
//   sees it.
// Losing it (deleted, unwritable store, two processes writing it at once) only costs hashing
// again: a blob without a record is hashed before its first load, then recorded.
import { randomBytes } from "node:crypto";
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { digestHex, sha256File } from "./digest.js";
import type { Descriptor } from "./types.js";

/** `if-changed`: hash only blobs whose file differs from when they last matched; `always`: hash every one. */
export type BlobCheck = "if-changed" | "always";

interface FileIdentity {
  size: number;
  mtimeMs: number;
  ino: number;
}

const RECORD_FILE = ".vllama-verified.json";

function identityOf(info: FileIdentity): FileIdentity {
  return { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino };
}

function sameFile(a: FileIdentity | undefined, b: FileIdentity): boolean {
  return a !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

export class VerifiedBlobs {
  private readonly recordPath: string;
  private entries?: Promise<Map<string, FileIdentity>>;
  private saving: Promise<void> = Promise.resolve();

  constructor(storeDir: string, private readonly blobPath: (digest: string) => string) {
    this.recordPath = join(storeDir, RECORD_FILE);
  }

  /**
   * Why the blob `layer` names is not what its file holds (missing, another size, another
   * digest), or undefined when it is. The size is always compared; the digest as `check` says.
   */
  async problem(layer: Descriptor, check: BlobCheck): Promise<string | undefined> {
    const path = this.blobPath(layer.digest);
    const short = `sha256-${digestHex(layer.digest).slice(0, 12)}`;
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) return `its blob ${short} is missing`;
    if (info.size !== layer.size) return `its blob ${short} has ${info.size} bytes, its manifest says ${layer.size} (truncated or replaced)`;
    const entries = await this.load();
    if (check === "if-changed" && sameFile(entries.get(digestHex(layer.digest)), info)) return undefined;
    if ((await sha256File(path)) !== `sha256:${digestHex(layer.digest)}`) return `its blob ${short} does not match its digest (changed on disk)`;
    await this.remember(layer.digest, identityOf(info));
    return undefined;
  }

  /** Records a blob the store has just written from bytes whose digest it checked. */
  async record(digest: string): Promise<void> {
    const info = await stat(this.blobPath(digest));
    await this.remember(digest, identityOf(info));
  }

  /** Drops a removed blob's entry. */
  async forget(digest: string): Promise<void> {
    const entries = await this.load();
    if (entries.delete(digestHex(digest))) await this.saveSerialized(entries);
  }

  private load(): Promise<Map<string, FileIdentity>> {
    this.entries ??= readFile(this.recordPath, "utf8").then(
      (text) => new Map(Object.entries(JSON.parse(text) as Record<string, FileIdentity>)),
      () => new Map(),
    ).catch(() => new Map()); // an unreadable record is an empty one: blobs are hashed again
    return this.entries;
  }

  private async remember(digest: string, identity: FileIdentity): Promise<void> {
    const entries = await this.load();
    entries.set(digestHex(digest), identity);
    await this.saveSerialized(entries);
  }

  /** Writes take turns; one that fails (a read-only store) keeps the record in memory only. */
  private async saveSerialized(entries: Map<string, FileIdentity>): Promise<void> {
    this.saving = this.saving.then(() => this.save(entries)).catch(() => {});
    await this.saving;
  }

  private async save(entries: Map<string, FileIdentity>): Promise<void> {
    const temp = `${this.recordPath}.${randomBytes(6).toString("hex")}`;
    try {
      await writeFile(temp, JSON.stringify(Object.fromEntries(entries)));
      await rename(temp, this.recordPath);
    } finally {
      await rm(temp, { force: true });
    }
  }
}
