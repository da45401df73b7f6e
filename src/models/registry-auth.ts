// Registry sign-in as Ollama does it (server/auth.go, auth/auth.go, makeRequestWithRetry in
// server/images.go). A registry that wants credentials answers 401 with `WWW-Authenticate: Bearer
// realm=...,service=...,scope=...`; the client asks the realm for a token in a request signed with
// its ed25519 key, then repeats the request with `Authorization: Bearer <token>`. The key is
// Ollama's own (~/.ollama/id_ed25519), so one already added to an ollama.com account works here
// too; where there is none it is created, as `ollama serve` does.

import { createHash, generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from "node:crypto";
import { link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { InternalError, UnauthorizedError } from "../api/errors.js";
import { authorizedKey, formatOpenSshPrivateKey, parseOpenSshPrivateKey, publicKeyBase64 } from "./ssh-key.js";

export type RegistryAction = "pull" | "push";

export function defaultKeyPath(): string {
  return join(homedir(), ".ollama", "id_ed25519");
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException).code;
}

/** Writes a new key pair; undefined when someone else (another pull, Ollama) created the key first. */
async function createKey(path: string): Promise<KeyObject | undefined> {
  const { privateKey } = generateKeyPairSync("ed25519");
  // Written aside and linked into place: the link fails where a key exists, and no reader ever
  // sees a half-written file.
  const draft = `${path}.${randomUUID()}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    await writeFile(draft, formatOpenSshPrivateKey(privateKey), { mode: 0o600 });
    await link(draft, path);
    await writeFile(`${path}.pub`, `${authorizedKey(privateKey)}\n`, { mode: 0o644 });
  } catch (error) {
    if (errorCode(error) === "EEXIST") return undefined;
    throw new InternalError(`cannot create private key ${path}: ${(error as Error).message}`);
  } finally {
    await rm(draft, { force: true });
  }
  return privateKey;
}

/** The key that signs token requests: read from `path`, or created there (with `path`.pub) if missing. */
export async function loadOrCreateKey(path: string): Promise<KeyObject> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if (errorCode(error) !== "ENOENT") throw new InternalError(`cannot read private key ${path}: ${(error as Error).message}`);
    return (await createKey(path)) ?? loadOrCreateKey(path);
  }
  return parseOpenSshPrivateKey(text, path);
}

/** The registry's `{"errors":[{"message"}]}` body, when it sent one, as ": message". */
export async function registryErrorDetail(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as { errors?: Array<{ message?: string }> };
    const messages = body.errors?.map((e) => e.message).filter(Boolean);
    if (messages?.length) return `: ${messages.join("; ")}`;
  } catch {
    // not JSON: fall back to the raw text
  }
  return text ? `: ${text.slice(0, 200)}` : "";
}

interface BearerChallenge {
  realm: URL;
  service: string;
  scope: string;
}

/** RFC 7235 auth-params, `name=token` or `name="quoted \" string"`; the first of each name wins. */
function authParams(text: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const [, name, quoted, token] of text.matchAll(/([\w!#$%&'*+.^`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))/g)) {
    const key = name!.toLowerCase();
    if (!params.has(key)) params.set(key, quoted?.replace(/\\(.)/g, "$1") ?? token!);
  }
  return params;
}

function parseBearerChallenge(header: string | null, host: string, what: string): BearerChallenge {
  if (!header?.trim()) throw new UnauthorizedError(`${what}: unauthorized: ${host} sent no authentication challenge`);
  const scheme = header.trim().split(/[\s,]/, 1)[0]!;
  if (scheme.toLowerCase() !== "bearer") {
    const only = "like Ollama, vllama signs in only with Bearer tokens";
    throw new UnauthorizedError(`${what}: unauthorized: ${host} asks for ${scheme} credentials; ${only}`);
  }
  const params = authParams(header.trim().slice(scheme.length));
  const invalid = () =>
    new InternalError(`${what}: ${host} sent an invalid authentication challenge, without an http(s) realm: ${header.slice(0, 200)}`);
  let realm: URL;
  try {
    realm = new URL(params.get("realm") ?? "");
  } catch {
    throw invalid();
  }
  if (realm.protocol !== "https:" && realm.protocol !== "http:") throw invalid();
  return { realm, service: params.get("service") ?? "", scope: params.get("scope") ?? "" };
}

/** Go's url.QueryEscape: token URLs are spelled exactly as Ollama spells them. */
function goQueryEscape(text: string): string {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, "+");
}

/** The realm plus service, each scope, `ts` and `nonce`, keys sorted as Go's url.Values.Encode sorts them. */
function tokenUrl(challenge: BearerChallenge): string {
  const url = new URL(challenge.realm);
  const query: Array<[string, string]> = [
    ...url.searchParams,
    ["service", challenge.service],
    ...challenge.scope.split(" ").map((scope): [string, string] => ["scope", scope]),
    ["ts", String(Math.floor(Date.now() / 1000))],
    ["nonce", randomBytes(16).toString("base64url")],
  ];
  query.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)); // stable: a key's values keep their order
  url.search = query.map(([key, value]) => `${goQueryEscape(key)}=${goQueryEscape(value)}`).join("&");
  return url.href;
}

/** Ollama signs a token request as a request with a body: this is its empty body's digest as signed. */
const EMPTY_BODY_DIGEST = Buffer.from(createHash("sha256").digest("hex")).toString("base64");

/** `<public key base64>:<base64 ed25519 signature of "GET,<url>,<body digest>">`, as Ollama's auth.Sign. */
function signTokenRequest(key: KeyObject, url: string): string {
  const signature = sign(null, Buffer.from(`GET,${url},${EMPTY_BODY_DIGEST}`), key);
  return `${publicKeyBase64(key)}:${signature.toString("base64")}`;
}

function tokenFrom(text: string): string | undefined {
  try {
    // `token` is Ollama's field; `access_token` the OAuth2 spelling other Docker registries send.
    const body = JSON.parse(text) as { token?: unknown; access_token?: unknown };
    const token = body.token ?? body.access_token;
    return typeof token === "string" && token !== "" ? token : undefined;
  } catch {
    return undefined;
  }
}

/** Where a user adds the public key: ollama.com's settings page for Ollama's registry. */
function keysPage(host: string): string {
  return /(^|\.)ollama\.(ai|com)(:\d+)?$/i.test(host) ? "at https://ollama.com/settings/keys" : `on ${host}`;
}

export interface RegistryAuthOptions {
  action: RegistryAction;
  keyPath: string;
  signal?: AbortSignal;
}

/**
 * The credentials of one pull or push: a bearer token per registry origin, earned at its first
 * challenge and kept for later requests. Tokens are per origin so that an upload location or a
 * blob redirect on another host (a CDN, object storage) never receives them.
 */
export class RegistryAuth {
  private readonly tokens = new Map<string, string>();
  private key?: Promise<KeyObject>;

  constructor(private readonly options: RegistryAuthOptions) {}

  /**
   * Sends a request with its origin's token; a 401 challenge earns a new token and the request is
   * sent once more, as Ollama does. `init` is called per attempt, so a streamed body is made anew.
   */
  async send(url: string, init: () => RequestInit, what: string): Promise<Response> {
    const { origin, host } = new URL(url);
    const first = await fetch(url, this.authorize(origin, init()));
    if (first.status !== 401) return first;
    await first.body?.cancel();
    const challenge = parseBearerChallenge(first.headers.get("www-authenticate"), host, what);
    this.tokens.set(origin, await this.requestToken(challenge, host, what));
    const second = await fetch(url, this.authorize(origin, init()));
    if (second.status === 401) throw await this.denied(second, host, what);
    return second;
  }

  private authorize(origin: string, init: RequestInit): RequestInit {
    const token = this.tokens.get(origin);
    if (!token) return init;
    const headers = new Headers(init.headers);
    headers.set("Authorization", `Bearer ${token}`);
    return { ...init, headers };
  }

  private signingKey(): Promise<KeyObject> {
    return (this.key ??= loadOrCreateKey(this.options.keyPath));
  }

  private async requestToken(challenge: BearerChallenge, host: string, what: string): Promise<string> {
    const url = tokenUrl(challenge);
    const headers = { Authorization: signTokenRequest(await this.signingKey(), url) };
    const response = await fetch(url, { headers, signal: this.options.signal });
    if (response.status === 401 || response.status === 403) throw await this.denied(response, host, what);
    if (!response.ok) {
      const detail = await registryErrorDetail(response);
      throw new InternalError(`${what}: token request to ${challenge.realm.host}: HTTP ${response.status}${detail}`);
    }
    const token = tokenFrom(await response.text());
    if (!token) throw new InternalError(`${what}: ${challenge.realm.host} answered the token request without a token`);
    return token;
  }

  /** One line: the registry's reason, what to do (Ollama's wording for a push), and the key to add. */
  private async denied(response: Response, host: string, what: string): Promise<UnauthorizedError> {
    const detail = await registryErrorDetail(response);
    const advice =
      this.options.action === "push"
        ? "you are not authorized to push to this namespace, create the model under a namespace you own, " +
          "with your public key added to your account"
        : "if the model is private, add your public key to your account";
    const publicKey = authorizedKey(await this.signingKey());
    return new UnauthorizedError(`${what}: unauthorized${detail}; ${advice} ${keysPage(host)}: ${publicKey}`);
  }
}
