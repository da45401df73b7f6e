// Bounds on a client's JSON schema (a `format`, a `response_format`, a tool's parameters), checked
// before any native call. llama.cpp's converter and grammar parser recurse once per nesting level
// and `$ref` hop and expand `{m,n}` repetitions into m..n rules: a 10,000-long `$ref` chain
// crashed the process (stack overflow) and `minLength: 1e9` asked for a billion rules. Real
// schemas stay far inside these bounds (OpenAI's structured outputs allow 5 levels of nesting).
import { BadRequestError } from "../api/errors.js";

export const SCHEMA_LIMITS = {
  /** The schema's JSON text, in UTF-16 code units. */
  maxLength: 64 * 1024,
  /** Objects and arrays inside one another (a property's schema is two levels below its object's). */
  maxNesting: 64,
  /** `$ref`s followed one after another (a definition whose schema refers to the next, and so on). */
  maxRefChain: 32,
  /** `minLength`, `maxItems`, ... and `{m,n}` in a `pattern`: each becomes that many grammar rules
   * (llama.cpp's grammar parser refuses more too: MAX_REPETITION_THRESHOLD). */
  maxRepetition: 2_000,
  /**
   * Alternatives of one choice (`enum` values, `anyOf`/`oneOf` branches): each is a grammar stack
   * that a rejected token is checked against. Measured on Qwen2's 151,936-token vocabulary with
   * random weights (the worst case: the model's choice is almost never allowed), 8 greedy tokens
   * cost 0.5 s of CPU with 64 values, 1.6 s with 256, 4.0 s with 1,000 (20 s before
   * native/sampler.cpp checked candidates best first).
   */
  maxAlternatives: 256,
} as const;

const REPETITION_KEYWORDS = ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"];
const ALTERNATIVE_KEYWORDS = ["enum", "anyOf", "oneOf"];
const PATTERN_REPETITION = /\{(\d+)(?:,(\d*))?\}/g;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Every object inside `root`, each once, walked without recursion; fails past `maxNesting`. */
function objectsOf(root: Json, what: string): JsonObject[] {
  const found: JsonObject[] = [];
  const pending: Array<{ value: Json; depth: number }> = [{ value: root, depth: 1 }];
  while (pending.length > 0) {
    const { value, depth } = pending.pop()!;
    if (value === null || typeof value !== "object") continue;
    if (depth > SCHEMA_LIMITS.maxNesting) {
      throw new BadRequestError(`${what} is nested more than ${SCHEMA_LIMITS.maxNesting} levels deep`);
    }
    if (isObject(value)) found.push(value);
    for (const child of Object.values(value)) pending.push({ value: child, depth: depth + 1 });
  }
  return found;
}

function checkRepetitions(node: JsonObject, what: string): void {
  const tooMany = (n: number) => n > SCHEMA_LIMITS.maxRepetition;
  for (const keyword of REPETITION_KEYWORDS) {
    const n = node[keyword];
    if (typeof n === "number" && tooMany(n)) {
      throw new BadRequestError(`${what}: "${keyword}": ${n} is above the supported ${SCHEMA_LIMITS.maxRepetition}`);
    }
  }
  if (typeof node.pattern !== "string") return;
  for (const [, min, max] of node.pattern.matchAll(PATTERN_REPETITION)) {
    if (tooMany(Number(min)) || (max !== undefined && max !== "" && tooMany(Number(max)))) {
      throw new BadRequestError(`${what}: a repetition in "pattern" is above the supported ${SCHEMA_LIMITS.maxRepetition}`);
    }
  }
}

function checkAlternatives(node: JsonObject, what: string): void {
  for (const keyword of ALTERNATIVE_KEYWORDS) {
    const list = node[keyword];
    if (Array.isArray(list) && list.length > SCHEMA_LIMITS.maxAlternatives) {
      throw new BadRequestError(
        `${what}: "${keyword}" has ${list.length} alternatives, more than the supported ${SCHEMA_LIMITS.maxAlternatives}`,
      );
    }
  }
}

/** The schema a local `$ref` ("#", "#/$defs/a", "#/definitions/a~1b") points to, if any. */
function resolveRef(root: Json, ref: string): Json | undefined {
  if (!ref.startsWith("#")) return undefined;
  let node: Json | undefined = root;
  for (const raw of ref.slice(1).split("/").slice(1)) {
    const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, Json>)[key];
  }
  return node;
}

/** A target that is nothing but another `$ref` produces no text before recurring: left recursion. */
function refsOf(root: Json, ref: string, what: string, cache: Map<string, string[]>): string[] {
  let refs = cache.get(ref);
  if (refs === undefined) {
    const target = resolveRef(root, ref);
    refs = target === undefined ? [] : objectsOf(target, what).flatMap((o) => (typeof o.$ref === "string" ? [o.$ref] : []));
    cache.set(ref, refs);
  }
  return refs;
}

/**
 * Follows `$ref`s from the root: fails when a chain is longer than `maxRefChain`, or when a
 * definition's whole schema is a `$ref` back into its own chain (a cycle that matches nothing
 * first, which llama.cpp's grammar cannot express). Recursion through content (a tree node whose
 * `children` items refer to the node) is a valid schema and passes.
 */
function checkRefs(root: Json, what: string): void {
  const cache = new Map<string, string[]>();
  /** The longest chain of `$ref`s from each finished one (memoized, so a shared tail is walked once). */
  const chainFrom = new Map<string, number>();
  const visit = (ref: string, chain: string[]): number => {
    if (chain.includes(ref)) {
      const target = resolveRef(root, chain[chain.length - 1]!);
      if (isObject(target) && target.$ref === ref && Object.keys(target).length === 1) {
        throw new BadRequestError(`${what}: "$ref": "${ref}" refers to itself without matching anything first (left recursion)`);
      }
      return 0;
    }
    let length = chainFrom.get(ref);
    if (length === undefined) {
      if (chain.length > SCHEMA_LIMITS.maxRefChain) throw refChainTooLong(what);
      length = 1 + Math.max(0, ...refsOf(root, ref, what, cache).map((next) => visit(next, [...chain, ref])));
      chainFrom.set(ref, length);
    }
    if (length > SCHEMA_LIMITS.maxRefChain) throw refChainTooLong(what);
    return length;
  };
  for (const ref of refsOf(root, "#", what, cache)) visit(ref, ["#"]);
}

function refChainTooLong(what: string): BadRequestError {
  return new BadRequestError(`${what}: a chain of "$ref"s is longer than the supported ${SCHEMA_LIMITS.maxRefChain}`);
}

/** Throws BadRequestError naming `what` ("format", "tools[0].function.parameters") when `schema` is out of bounds. */
export function checkJsonSchema(schema: unknown, what: string): void {
  const root = schema as Json;
  const objects = objectsOf(root, what); // the nesting bound first: JSON.stringify recurses too
  const length = JSON.stringify(root).length;
  if (length > SCHEMA_LIMITS.maxLength) {
    throw new BadRequestError(`${what} is ${length} characters of JSON, more than the supported ${SCHEMA_LIMITS.maxLength}`);
  }
  for (const node of objects) {
    checkRepetitions(node, what);
    checkAlternatives(node, what);
  }
  checkRefs(root, what);
}
