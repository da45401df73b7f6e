import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { BadRequestError } from "../api/errors.js";

/**
 * Validates a blob digest and returns its hex part. Accepts `sha256:<hex>` (the wire form) and
 * `sha256-<hex>` (the file name form), as Ollama does.
 */
export function digestHex(digest: string): string {
  const match = /^sha256[:-]([0-9a-f]{64})$/i.exec(digest);
  if (!match) throw new BadRequestError(`invalid digest '${digest}': expected sha256:<64 hex digits>`);
  return match[1]!.toLowerCase();
}

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

/** The 12 hex digits Ollama shows in progress lines: `pulling 6a0746a1ec1a`. */
export function shortDigest(digest: string): string {
  return digestHex(digest).slice(0, 12);
}
