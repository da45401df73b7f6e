import { BadRequestError } from "../api/errors.js";

export const DEFAULT_HOST = "registry.ollama.ai";
export const DEFAULT_NAMESPACE = "library";
export const DEFAULT_TAG = "latest";

/** A fully qualified model name: `host/namespace/model:tag`. Case is kept as written. */
export interface ModelName {
  host: string;
  namespace: string;
  model: string;
  tag: string;
}

type PartKind = "host" | "namespace" | "model" | "tag";

// Same rules as Ollama (types/model/name.go): first character alphanumeric or '_', then also
// '-' and '_'; '.' everywhere but in namespaces; ':' only in the host (a port).
const MAX_PART_LENGTH: Record<PartKind, number> = { host: 350, namespace: 80, model: 80, tag: 80 };

function partError(kind: PartKind, part: string): string | undefined {
  if (part.length === 0) return `${kind} is empty`;
  if (part.length > MAX_PART_LENGTH[kind]) return `${kind} '${part}' is longer than ${MAX_PART_LENGTH[kind]} characters`;
  if (!/^[A-Za-z0-9_]/.test(part)) return `${kind} '${part}' must start with a letter, a digit or '_'`;
  const allowed = kind === "host" ? /^[A-Za-z0-9_.:-]+$/ : kind === "namespace" ? /^[A-Za-z0-9_-]+$/ : /^[A-Za-z0-9_.-]+$/;
  if (!allowed.test(part)) {
    const extra = kind === "host" ? ", '.', ':'" : kind === "namespace" ? "" : ", '.'";
    return `${kind} '${part}' may only contain letters, digits, '_', '-'${extra}`;
  }
  return undefined;
}

/** Splits off the tag at the last ':' unless that colon belongs to a host's port. */
function splitTag(text: string): [string, string | undefined] {
  const colon = text.lastIndexOf(":");
  if (colon < 0 || text.indexOf("/", colon) >= 0) return [text, undefined];
  return [text.slice(0, colon), text.slice(colon + 1)];
}

/**
 * Parses `[host/][namespace/]model[:tag]` and fills in Ollama's defaults.
 * Throws BadRequestError naming the offending part.
 */
export function parseModelName(input: string): ModelName {
  const text = input.trim().replace(/^https?:\/\//i, "");
  const fail = (why: string): never => {
    throw new BadRequestError(`invalid model name '${input}': ${why}`);
  };
  if (text.length === 0) fail("name is empty");
  if (text.includes("@")) fail("digests are not supported in model names");

  const [path, tag] = splitTag(text);
  const parts = path.split("/");
  if (parts.length > 3) fail("expected [host/][namespace/]model[:tag]");
  const name: ModelName = {
    host: parts.length === 3 ? parts[0]! : DEFAULT_HOST,
    namespace: parts.length >= 2 ? parts[parts.length - 2]! : DEFAULT_NAMESPACE,
    model: parts[parts.length - 1]!,
    tag: tag ?? DEFAULT_TAG,
  };
  for (const kind of ["host", "namespace", "model", "tag"] as const) {
    const why = partError(kind, name[kind]);
    if (why) fail(why);
  }
  return name;
}

/** Ollama's shortest display form: `llama3.2:latest`, `user/m:tag`, `hf.co/u/r:Q4_K_M`. */
export function displayName(name: ModelName): string {
  const isDefaultHost = name.host.toLowerCase() === DEFAULT_HOST;
  let prefix = "";
  if (!isDefaultHost) prefix = `${name.host}/${name.namespace}/`;
  else if (name.namespace.toLowerCase() !== DEFAULT_NAMESPACE) prefix = `${name.namespace}/`;
  return `${prefix}${name.model}:${name.tag}`;
}

/** Normalises any accepted spelling to the short display form. */
export function normalizeModelName(input: string): string {
  return displayName(parseModelName(input));
}

/** The manifest's path below `manifests/`, one element per directory level. */
export function manifestPathParts(name: ModelName): [string, string, string, string] {
  return [name.host, name.namespace, name.model, name.tag];
}

/** Names are case-insensitive: two spellings are the same model when this key is equal. */
export function nameKey(name: ModelName): string {
  return manifestPathParts(name).join("/").toLowerCase();
}
