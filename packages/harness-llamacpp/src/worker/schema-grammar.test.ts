import { describe, expect, it } from "vitest";
import { list, literal } from "./gbnf.js";
import { compileSchema, SCHEMA_LIMITS, SchemaError } from "./schema-grammar.js";

// The JSON Schema → GBNF compiler on its own. That llama.cpp parses what it writes, and that
// the model's output under it validates, is checked on the real model in chat-run.int.test.ts.

const compile = (schema: unknown, strict = false) => compileSchema(schema, { strict, path: "s" });

/** The rule lines of a grammar, by name. */
const rulesOf = (grammar: string): Map<string, string> =>
  new Map(
    grammar
      .trim()
      .split("\n")
      .map((line) => {
        const [name, body] = line.split(" ::= ");
        return [name ?? "", body ?? ""];
      }),
  );

const failure = (schema: unknown, strict = false): SchemaError => {
  try {
    compile(schema, strict);
  } catch (error) {
    if (error instanceof SchemaError) return error;
    throw error;
  }
  throw new Error("compiled");
};

describe("literal and list", () => {
  it.each([
    ["abc", '"abc"'],
    ['"a\\b"', String.raw`"\"a\\b\""`],
    ["tab\tnew\nline\x7f", String.raw`"tab\x09new\x0aline\x7f"`],
    ["é", '"é"'],
  ])("%j → %s", (text, expected) => {
    expect(literal(text)).toBe(expected);
  });

  it.each([
    [[], undefined, '"[" ws ws "]"'],
    [["a", "b"], undefined, '"[" ws a ws "," ws b ws "]"'],
    [[], { rule: "x", min: 0, max: undefined }, '"[" ws (x (ws "," ws x)*)? ws "]"'],
    [[], { rule: "x", min: 2, max: 3 }, '"[" ws x (ws "," ws x){1,2} ws "]"'],
    [["a"], { rule: "x", min: 0, max: 2 }, '"[" ws a (ws "," ws x){0,2} ws "]"'],
    [[], { rule: "x", min: 0, max: 0 }, '"[" ws ws "]"'],
  ])("list(%j, %j)", (fixed, extra, expected) => {
    expect(list("[", "]", fixed, extra)).toBe(expected);
  });
});

describe("compileSchema", () => {
  it("writes every declared property in order, with JSON's own value rules", () => {
    const { grammar, docs } = compile({
      type: "object",
      properties: { name: { type: "string" }, age: { type: "integer" }, ok: { type: "boolean" } },
      required: ["name"],
    });
    const rules = rulesOf(grammar);
    expect(rules.get("root")).toBe("r1");
    expect(rules.get("r1")).toBe(
      String.raw`"{" ws "\"name\"" ws ":" ws string ws "," ws "\"age\"" ws ":" ws integer ws "," ws "\"ok\"" ws ":" ws boolean ws "}"`,
    );
    // Integers never take an exponent (1e999 would parse to Infinity), numbers a short one.
    expect(rules.get("integer")).toBe('"-"? ("0" | [1-9] [0-9]{0,15})');
    expect(rules.get("number")).toBeUndefined();
    // No newline anywhere: a plain-text template ends a turn at one.
    expect(rules.get("ws")).toBe('" "?');
    expect(grammar).not.toMatch(/\\n|\[\\n\]/);
    expect(docs).toEqual({
      type: "object",
      properties: { name: { type: "string" }, age: { type: "integer" }, ok: { type: "boolean" } },
    });
  });

  it("bounds strings, lowering a maximum beyond the limit and refusing such a minimum", () => {
    expect(rulesOf(compile({ type: "string", maxLength: 5 }).grammar).get("r1")).toBe(
      String.raw`"\"" char{0,5} "\"" `.trim(),
    );
    expect(rulesOf(compile({ minLength: 2, maxLength: 2 }).grammar).get("r1")).toBe(
      String.raw`"\"" char{2} "\""`,
    );
    expect(rulesOf(compile({ type: "string", maxLength: 1e9 }).grammar).get("r1")).toContain(
      `char{0,${SCHEMA_LIMITS.count}}`,
    );
    expect(failure({ type: "string", minLength: 1e9 }).path).toBe("s.minLength");
    expect(failure({ type: "string", minLength: 3, maxLength: 2 }).path).toBe("s.maxLength");
  });

  it("turns type lists, anyOf and oneOf into alternatives", () => {
    const nullable = compile({ type: ["string", "null"] });
    expect(rulesOf(nullable.grammar).get("r1")).toBe("string | null");
    expect(nullable.docs).toEqual({ type: ["string", "null"] });
    const any = compile({
      anyOf: [{ type: "integer" }, { type: "array", items: { type: "number" } }],
    });
    expect(rulesOf(any.grammar).get("root")).toBe("r2");
    expect(rulesOf(any.grammar).get("r2")).toBe("integer | r1");
    expect(any.docs).toEqual({
      oneOf: [{ type: "integer" }, { type: "array", items: { type: "number" } }],
    });
  });

  it("writes enums and consts as JSON literals", () => {
    const { grammar, docs } = compile({ enum: ['a"b', 3, null, { k: [1] }] });
    expect(rulesOf(grammar).get("r1")).toBe(
      String.raw`"\"a\\\"b\"" | "3" | "null" | "{\"k\":[1]}"`,
    );
    expect(docs).toEqual({ enum: ['a"b', 3, null, { k: [1] }] });
    expect(rulesOf(compile({ const: "x" }).grammar).get("r1")).toBe(String.raw`"\"x\""`);
  });

  it("follows $ref into $defs and definitions, and recursion through rules", () => {
    const tree = compile({
      $defs: {
        node: {
          type: "object",
          properties: { next: { anyOf: [{ $ref: "#/$defs/node" }, { type: "null" }] } },
        },
      },
      $ref: "#/$defs/node",
    });
    const rules = rulesOf(tree.grammar);
    // root → the ref's rule → the object, whose property refers back to the ref's rule.
    expect(rules.get("root")).toBe("r1");
    expect(rules.get("r1")).toBe("r3");
    expect(rules.get("r2")).toBe("r1 | null");
    expect(rules.get("r3")).toContain('"\\"next\\"" ws ":" ws r2');
    const old = compile({
      definitions: { n: { type: "integer" } },
      items: { $ref: "#/definitions/n" },
    });
    expect(rulesOf(old.grammar).get("r2")).toBe('"[" ws (r1 (ws "," ws r1)*)? ws "]"');
    expect(failure({ $ref: "#/$defs/missing" }).path).toBe("s.$ref");
    expect(failure({ $ref: "https://example.com/schema" }).message).toContain("does not name");
  });

  it("writes optional properties too, as maxProperties leaves room, and undeclared required ones", () => {
    const { docs } = compile({
      properties: { a: { type: "integer" }, b: { type: "integer" }, c: { type: "integer" } },
      required: ["c", "d"],
      maxProperties: 3,
    });
    expect(Object.keys((docs as { properties: object }).properties)).toEqual(["a", "c", "d"]);
    expect(failure({ properties: { a: {} }, required: ["a", "b"], maxProperties: 1 }).path).toBe(
      "s.maxProperties",
    );
    expect(failure({ required: ["x"], additionalProperties: false }).path).toBe("s.required");
  });

  it("writes maps, tuples and bounded lists", () => {
    const map = compile({
      type: "object",
      additionalProperties: { type: "integer" },
      maxProperties: 2,
    });
    expect(rulesOf(map.grammar).get("r2")).toBe('"{" ws (r1 (ws "," ws r1){0,1})? ws "}"');
    expect(rulesOf(map.grammar).get("r1")).toBe('string ws ":" ws integer');
    expect(
      rulesOf(compile({ type: "object", additionalProperties: false }).grammar).get("r1"),
    ).toBe('"{" ws "}"');
    const tuple = compile({ prefixItems: [{ type: "integer" }, { type: "string" }], items: false });
    expect(rulesOf(tuple.grammar).get("r1")).toBe('"[" ws integer ws "," ws string ws "]"');
    const bounded = compile({
      type: "array",
      items: { type: "boolean" },
      minItems: 1,
      maxItems: 3,
    });
    expect(rulesOf(bounded.grammar).get("r1")).toBe(
      '"[" ws boolean (ws "," ws boolean){0,2} ws "]"',
    );
  });

  it("holds date, time, date-time and uuid strings to their format", () => {
    const { grammar } = compile({ type: "string", format: "date-time" });
    const rules = rulesOf(grammar);
    expect(rules.get("r1")).toBe(String.raw`"\"" date "T" time "\""`);
    expect(rules.has("date") && rules.has("time") && rules.has("month-day")).toBe(true);
    expect(rulesOf(compile({ format: "uuid" }).grammar).has("uuid")).toBe(true);
  });

  it("refuses value checks under strict, and shows them to the model otherwise", () => {
    const schema = {
      type: "object",
      properties: { n: { type: "integer", minimum: 1, description: "how many" } },
    };
    expect(failure(schema, true).path).toBe("s.properties.n.minimum");
    expect(failure({ type: "string", format: "email" }, true).path).toBe("s.format");
    expect(failure({ type: "string", pattern: "^a" }, true).message).toContain("strict to false");
    const loose = compile(schema);
    expect(loose.docs).toEqual({
      type: "object",
      properties: { n: { type: "integer", description: "how many (minimum: 1)" } },
    });
    expect(compile({ type: "array", uniqueItems: false }, true).grammar).toContain("root");
  });

  it.each([
    [false, "s", "no value can match"],
    [[], "s", "must be a JSON Schema"],
    [{ type: "text" }, "s.type", "is not a JSON Schema type"],
    [{ type: [] }, "s.type", "empty list"],
    [{ enum: [] }, "s.enum", "non-empty list"],
    [{ allOf: [{}, {}] }, "s.allOf", "more than one schema"],
    [{ $ref: "#", type: "object" }, "s.$ref", "$ref beside type"],
    [{ anyOf: "x" }, "s.anyOf", "non-empty list of schemas"],
    [{ $dynamicRef: "#x" }, "s.$dynamicRef", "use $ref"],
    [{ properties: [] }, "s.properties", "must be an object"],
    [{ required: "a" }, "s.required", "list of property names"],
    [{ maxItems: -1 }, "s.maxItems", "non-negative integer"],
    [{ minProperties: 2, properties: { a: {} } }, "s.minProperties", "more properties"],
  ])("refuses %j at %s", (schema, path, message) => {
    const error = failure(schema);
    expect(error.path).toBe(path);
    expect(error.message).toContain(message);
  });

  it("bounds depth, size and literals", () => {
    let deep: unknown = { type: "integer" };
    for (let i = 0; i <= SCHEMA_LIMITS.depth; i++) deep = { type: "array", items: deep };
    expect(failure(deep).message).toContain("nested deeper");
    const wide = Object.fromEntries(
      Array.from({ length: SCHEMA_LIMITS.nodes + 1 }, (_, i) => [`p${i}`, { type: "integer" }]),
    );
    expect(failure({ properties: wide }).message).toContain("subschemas");
    const values = Array.from({ length: SCHEMA_LIMITS.enumValues + 1 }, (_, i) => i);
    expect(failure({ enum: values }).message).toContain("more than");
    expect(failure({ enum: ["x".repeat(SCHEMA_LIMITS.literalChars)] }).message).toContain(
      "too long",
    );
  });

  it("reads own properties only", () => {
    const schema = Object.create({ type: "integer" }) as object;
    expect(rulesOf(compile(schema).grammar).get("root")).toBe("value");
    const proto = JSON.parse('{"properties": {"__proto__": {"type": "integer"}}}') as unknown;
    expect(rulesOf(compile(proto).grammar).get("r1")).toBe(
      String.raw`"{" ws "\"__proto__\"" ws ":" ws integer ws "}"`,
    );
  });
});
