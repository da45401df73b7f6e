// Bounds on clients' JSON schemas, checked before any native call (docs/RELIABILITY.md, findings 1 and 2).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BadRequestError } from "../../src/api/errors.js";
import { checkJsonSchema, SCHEMA_LIMITS } from "../../src/engine/json-schema-check.js";

/** `{"$ref": "#/$defs/d0"}` with d0 -> d1 -> ... -> d(n-1) -> a string. */
function refChain(n: number): object {
  const defs: Record<string, object> = {};
  for (let i = 0; i < n; i++) defs[`d${i}`] = i + 1 < n ? { $ref: `#/$defs/d${i + 1}` } : { type: "string" };
  return { $ref: "#/$defs/d0", $defs: defs };
}

function nested(levels: number): object {
  let schema: object = { type: "string" };
  for (let i = 0; i < levels; i++) schema = { type: "object", properties: { a: schema } };
  return schema;
}

const rejects = (schema: unknown, message: RegExp) =>
  assert.throws(() => checkJsonSchema(schema, "format"), (e: unknown) => e instanceof BadRequestError && message.test(e.message));

describe("JSON schema bounds", () => {
  test("ordinary schemas pass, recursion through content included", () => {
    checkJsonSchema({ type: "object", properties: { mood: { enum: ["happy", "sad"] }, age: { type: "integer", maximum: 99 } } }, "format");
    checkJsonSchema(refChain(SCHEMA_LIMITS.maxRefChain - 1), "format");
    checkJsonSchema(nested(20), "format");
    const tree = { $ref: "#/$defs/node", $defs: { node: { type: "object", properties: { children: { type: "array", items: { $ref: "#/$defs/node" } } } } } };
    checkJsonSchema(tree, "format");
    checkJsonSchema({ type: "string", pattern: "^[a-z]{2,20}$", maxLength: SCHEMA_LIMITS.maxRepetition }, "format");
  });

  test("a 10,000-long $ref chain (358 KB) is refused, whatever order the definitions are visited in", () => {
    rejects(refChain(10_000), /format/);
    rejects({ ...refChain(SCHEMA_LIMITS.maxRefChain + 2) }, /chain of "\$ref"s is longer than the supported 32/);
    // The deepest definitions first: a memo of short tails must still add up to the whole chain.
    const chain = refChain(SCHEMA_LIMITS.maxRefChain + 2) as { $defs: Record<string, object> };
    const backwards = { anyOf: Object.keys(chain.$defs).reverse().map((d) => ({ $ref: `#/$defs/${d}` })).slice(0, 3).concat({ $ref: "#/$defs/d0" }), $defs: chain.$defs };
    rejects(backwards, /chain of "\$ref"s/);
  });

  test("mutually recursive $refs that match nothing first (left recursion) are refused", () => {
    rejects({ $ref: "#/$defs/a", $defs: { a: { $ref: "#/$defs/b" }, b: { $ref: "#/$defs/a" } } }, /left recursion/);
    rejects({ $ref: "#/$defs/a", $defs: { a: { $ref: "#/$defs/a" } } }, /left recursion/);
  });

  test("nesting, size, repetitions and alternatives are bounded", () => {
    rejects(nested(40), /nested more than 64 levels/);
    rejects({ type: "string", description: "x".repeat(SCHEMA_LIMITS.maxLength) }, /characters of JSON, more than the supported/);
    rejects({ type: "string", minLength: 1e9 }, /"minLength": 1000000000 is above the supported 2000/);
    rejects({ type: "array", maxItems: 1e6 }, /"maxItems"/);
    rejects({ type: "string", pattern: "^a{5000}$" }, /repetition in "pattern"/);
    rejects({ enum: Array.from({ length: 1000 }, (_, i) => `v${i}`) }, /"enum" has 1000 alternatives, more than the supported 256/);
    rejects({ anyOf: Array.from({ length: 300 }, () => ({ type: "string" })) }, /"anyOf" has 300 alternatives/);
  });

  test("a schema nested 100,000 levels deep is refused without recursion", () => {
    let deep: unknown = {};
    for (let i = 0; i < 100_000; i++) deep = { a: deep };
    rejects(deep, /nested more than/);
  });
});
