// An in-process Docker-v2 registry for tests: serves manifests and blobs from memory (with Range
// and redirects), accepts pushes, and can misbehave on purpose (drop a connection mid-blob, stall,
// corrupt a blob). With requireAuth() it signs users in as Ollama's registry does: a 401 Bearer
// challenge, a token endpoint that verifies the ed25519-signed token request, then Bearer tokens.
//
//   const registry = await TestRegistry.start();
//   await registry.publish("library/tiny", "latest", [{ mediaType: LAYER_MEDIA_TYPES.model, data }]);
//   await pull(store, `${registry.host}/library/tiny:latest`, {}, onProgress);
//   await registry.close();

import { createHash, createPublicKey, randomUUID, verify, type KeyObject } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, type Descriptor, type Manifest } from "../../src/models/types.js";

export interface RecordedRequest {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

interface BlobFault {
  kind: "drop" | "stall";
  afterBytes: number;
}

export interface AuthOptions {
  /** Sent as WWW-Authenticate instead of the real challenge (null: no header), to play a broken registry. */
  challenge?: string | null;
  /** false: tokens grant pulls only, as for a namespace the user does not own. */
  grantPush?: boolean;
}

interface AuthMode extends AuthOptions {
  /** The base64 key blob, as a signed token request presents it. */
  keyBlob: string;
  publicKey: KeyObject;
}

/** The hex sha256 of an empty body, base64'd: the last part of what Ollama signs. */
const EMPTY_BODY_DIGEST = Buffer.from(createHash("sha256").digest("hex")).toString("base64");
const TOKEN_TTL_S = 60;

/**
 * `ssh-ed25519 AAAA... [comment]` -> the key, decoded here independently of src/models/ssh-key.ts:
 * the blob is `string "ssh-ed25519"` (4 + 11 bytes), then `string <32-byte key>` (4 + 32 bytes).
 */
export function publicKeyFromAuthorizedKey(line: string): { keyBlob: string; publicKey: KeyObject } {
  const keyBlob = line.trim().split(/\s+/)[1] ?? "";
  const blob = Buffer.from(keyBlob, "base64");
  if (blob.length !== 51 || blob.subarray(4, 15).toString() !== "ssh-ed25519") throw new Error(`not an ed25519 key: ${line}`);
  const x = blob.subarray(19).toString("base64url");
  return { keyBlob, publicKey: createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" }) };
}

function verifies(data: string, publicKey: KeyObject, signature: string): boolean {
  try {
    return verify(null, Buffer.from(data), publicKey, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}

function sha256(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ errors: [{ code, message }] }));
}

/** `bytes=N-` or `bytes=N-M` -> [start, end] inclusive; undefined when absent or unusable. */
function parseRange(header: string | undefined, size: number): [number, number] | undefined {
  const match = header ? /^bytes=(\d+)-(\d*)$/.exec(header) : null;
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = match[2] ? Math.min(Number(match[2]), size - 1) : size - 1;
  return start <= end ? [start, end] : undefined;
}

export class TestRegistry {
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, Buffer>(); // "namespace/model:tag" -> bytes
  readonly requests: RecordedRequest[] = [];
  /** Blob GETs answer with a 307 to /storage/<digest>, like registries backed by a CDN. */
  redirectBlobs = true;
  private readonly faults = new Map<string, BlobFault>();
  private readonly corrupted = new Set<string>();
  private readonly uploads = new Map<string, string>(); // upload id -> repository
  private stallListeners: Array<() => void> = [];
  private auth?: AuthMode;
  private readonly tokens = new Map<string, Set<string>>(); // token -> "namespace/model:action"
  private readonly nonces = new Set<string>();

  private constructor(private readonly server: Server) {}

  static async start(): Promise<TestRegistry> {
    const server = createServer();
    const registry = new TestRegistry(server);
    server.on("request", (req, res) => {
      registry.handle(req, res).catch((error: Error) => {
        if (!res.headersSent) sendError(res, 500, "INTERNAL", error.message);
        else res.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return registry;
  }

  /** `127.0.0.1:PORT`: the host part of a model name that pulls from this registry. */
  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  addBlob(data: Buffer | string): Descriptor & { data: Buffer } {
    const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data, "utf8");
    const digest = sha256(bytes);
    this.blobs.set(digest, bytes);
    return { mediaType: "", digest, size: bytes.length, data: bytes };
  }

  /** Publishes a model: stores the layers, a config blob and the manifest. Returns the manifest. */
  publish(repository: string, tag: string, layers: Array<{ mediaType: string; data: Buffer | string }>): Manifest {
    const descriptors = layers.map(({ mediaType, data }) => {
      const { digest, size } = this.addBlob(data);
      return { mediaType, digest, size };
    });
    const config = this.addBlob(
      JSON.stringify({
        model_format: "gguf",
        model_family: "llama",
        model_families: ["llama"],
        model_type: "260K",
        file_type: "F32",
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: descriptors.map((d) => d.digest) },
      }),
    );
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MANIFEST_MEDIA_TYPE,
      config: { mediaType: CONFIG_MEDIA_TYPE, digest: config.digest, size: config.size },
      layers: descriptors,
    };
    this.manifests.set(`${repository}:${tag}`, Buffer.from(JSON.stringify(manifest)));
    return manifest;
  }

  /** The next GET of this blob sends `afterBytes` bytes, then drops the connection. */
  dropBlobOnce(digest: string, afterBytes: number): void {
    this.faults.set(digest, { kind: "drop", afterBytes });
  }

  /** The next GET of this blob sends `afterBytes` bytes, then hangs until the client goes away. */
  stallBlobOnce(digest: string, afterBytes: number): void {
    this.faults.set(digest, { kind: "stall", afterBytes });
  }

  /** Resolves when a stalled blob response has sent its bytes. */
  waitForStall(): Promise<void> {
    return new Promise((resolve) => this.stallListeners.push(resolve));
  }

  /** Serves this blob with one byte flipped (same length), so its digest no longer matches. */
  corruptBlob(digest: string): void {
    this.corrupted.add(digest);
  }

  /**
   * From now on /v2/ requests need a Bearer token. /token grants one to token requests signed (as
   * Ollama signs them) with the key of `authorizedKey`, the line a user adds to their account.
   */
  requireAuth(authorizedKey: string, options: AuthOptions = {}): void {
    this.auth = { ...publicKeyFromAuthorizedKey(authorizedKey), ...options };
    this.tokens.clear();
  }

  /** Why a token request must be refused: Ollama's signature scheme, checked field by field. */
  private tokenRequestProblem(auth: AuthMode, url: URL, req: IncomingMessage): string | undefined {
    const [keyBlob, signature = ""] = (req.headers.authorization ?? "").split(":");
    const signed = `GET,http://${req.headers.host}${req.url},${EMPTY_BODY_DIGEST}`;
    const ts = Number(url.searchParams.get("ts"));
    const nonce = url.searchParams.get("nonce") ?? "";
    const scopes = url.searchParams.getAll("scope");
    if (keyBlob !== auth.keyBlob) return "unknown key";
    if (!verifies(signed, auth.publicKey, signature)) return "invalid signature";
    if (!(Math.abs(Date.now() / 1000 - ts) <= TOKEN_TTL_S)) return "stale timestamp";
    if (nonce.length < 16 || this.nonces.has(nonce)) return "nonce missing or reused";
    if (url.searchParams.get("service") !== this.host) return "wrong service";
    if (scopes.length === 0 || !scopes.every((s) => /^repository:[^:]+\/[^:]+:[a-z,]+$/.test(s))) return "invalid scope";
    return undefined;
  }

  private grantToken(auth: AuthMode, url: URL, req: IncomingMessage, res: ServerResponse): void {
    const problem = this.tokenRequestProblem(auth, url, req);
    if (problem) return sendError(res, 401, "UNAUTHORIZED", problem);
    this.nonces.add(url.searchParams.get("nonce")!);
    const granted = new Set<string>();
    for (const scope of url.searchParams.getAll("scope")) {
      const [, repository, actions] = scope.split(":") as [string, string, string];
      for (const action of actions.split(",")) if (action === "pull" || auth.grantPush !== false) granted.add(`${repository}:${action}`);
    }
    const token = randomUUID();
    this.tokens.set(token, granted);
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ token }));
  }

  /** True when the request's token covers it; otherwise answers the 401 challenge. */
  private authorized(repository: string, method: string, req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.auth) return true;
    const action = method === "GET" || method === "HEAD" ? "pull" : "push";
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (token && this.tokens.get(token)?.has(`${repository}:${action}`)) return true;
    const scope = `repository:${repository}:${action === "push" ? "pull,push" : "pull"}`;
    const challenge = this.auth.challenge === undefined ? `Bearer realm="${this.url}/token",service="${this.host}",scope="${scope}"` : this.auth.challenge;
    res.writeHead(401, { "Content-Type": "application/json", ...(challenge === null ? {} : { "WWW-Authenticate": challenge }) });
    res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }));
    return false;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://registry");
    const method = req.method ?? "GET";
    const { range, authorization } = req.headers;
    this.requests.push({ method, path: url.pathname + url.search, ...(range ? { range } : {}), ...(authorization ? { authorization } : {}) });

    if (url.pathname === "/token" && this.auth) return this.grantToken(this.auth, url, req, res);
    const storage = /^\/storage\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (storage) return this.serveBlob(storage[1]!, req, res);
    const match = /^\/v2\/([^/]+\/[^/]+)\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    if (!match) return sendError(res, 404, "NOT_FOUND", "not found");
    const [, repository, kind, rest] = match as unknown as [string, string, string, string];
    if (!this.authorized(repository, method, req, res)) return;

    if (kind === "manifests") return this.handleManifest(repository, rest, method, req, res);
    if (rest === "uploads/" && method === "POST") return this.startUpload(repository, res);
    if (rest.startsWith("uploads/") && method === "PUT") return this.finishUpload(rest.slice("uploads/".length), url, req, res);
    if (method === "GET" && this.redirectBlobs && this.blobs.has(rest)) {
      res.writeHead(307, { Location: `/storage/${rest}` });
      return void res.end();
    }
    if (method === "GET" || method === "HEAD") return this.serveBlob(rest, req, res);
    sendError(res, 405, "UNSUPPORTED", `${method} not supported`);
  }

  private async handleManifest(repository: string, tag: string, method: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const key = `${repository}:${tag}`;
    if (method === "PUT") {
      const body = await readBody(req);
      const manifest = JSON.parse(body.toString("utf8")) as Manifest;
      const missing = [manifest.config, ...manifest.layers].find((d) => !this.blobs.has(d.digest));
      if (missing) return sendError(res, 400, "BLOB_UNKNOWN", `blob unknown: ${missing.digest}`);
      this.manifests.set(key, body);
      res.writeHead(201);
      return void res.end();
    }
    const manifest = this.manifests.get(key);
    if (!manifest) return sendError(res, 404, "MANIFEST_UNKNOWN", "manifest unknown");
    res.writeHead(200, { "Content-Type": MANIFEST_MEDIA_TYPE, "Content-Length": manifest.length });
    res.end(method === "HEAD" ? undefined : manifest);
  }

  private startUpload(repository: string, res: ServerResponse): void {
    const id = randomUUID();
    this.uploads.set(id, repository);
    res.writeHead(202, { Location: `/v2/${repository}/blobs/uploads/${id}` });
    res.end();
  }

  private async finishUpload(id: string, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const digest = url.searchParams.get("digest");
    if (!this.uploads.delete(id)) return sendError(res, 404, "BLOB_UPLOAD_UNKNOWN", "upload unknown");
    if (!digest || sha256(body) !== digest) return sendError(res, 400, "DIGEST_INVALID", "digest did not match content");
    this.blobs.set(digest, body);
    res.writeHead(201, { "Docker-Content-Digest": digest });
    res.end();
  }

  private serveBlob(digest: string, req: IncomingMessage, res: ServerResponse): void {
    const stored = this.blobs.get(digest);
    if (!stored) return sendError(res, 404, "BLOB_UNKNOWN", "blob unknown");
    const data = this.corrupted.has(digest) ? Buffer.concat([Buffer.from([stored[0]! ^ 0xff]), stored.subarray(1)]) : stored;
    const range = parseRange(req.headers.range, data.length);
    const [start, end] = range ?? [0, data.length - 1];
    const body = data.subarray(start, end + 1);
    const headers: Record<string, string | number> = { "Content-Type": "application/octet-stream", "Content-Length": body.length };
    if (range) headers["Content-Range"] = `bytes ${start}-${end}/${data.length}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === "HEAD") return void res.end();

    const fault = this.faults.get(digest);
    if (!fault) return void res.end(body);
    this.faults.delete(digest);
    res.write(body.subarray(0, fault.afterBytes), () => {
      // end() flushes what was written before closing, so the client holds exactly afterBytes.
      if (fault.kind === "drop") return void res.socket?.end();
      for (const listener of this.stallListeners.splice(0)) listener();
    });
  }
}
