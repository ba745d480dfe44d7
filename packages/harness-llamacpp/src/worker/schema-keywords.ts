// What the schema compiler knows of JSON Schema: its limits, the error it throws, which
// keywords shape a value and which are checks a grammar cannot make, and how a `$ref` inside
// the document resolves.

/** What no grammar is built beyond; a longer `maxLength`/`maxItems` is held to this. */
export const SCHEMA_LIMITS = {
  depth: 32,
  nodes: 2000,
  enumValues: 500,
  /** Characters of property names, enum and const values, all together. */
  literalChars: 64 * 1024,
  /** The largest min/max length, items or properties; larger maxima are lowered to it. */
  count: 4096,
} as const;

/** A schema the harness cannot hold generation to; `path` names the keyword at fault. */
export class SchemaError extends Error {
  readonly path: string;

  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = "SchemaError";
    this.path = path;
  }
}

/** JSON Schema's type names. */
export const TYPES = new Set(["string", "number", "integer", "boolean", "null", "object", "array"]);
/** Types whose alternatives document as one `type` list rather than a oneOf. */
export const PRIMITIVES = new Set(["string", "number", "integer", "boolean", "null"]);

/** Value checks a grammar does not make; `uniqueItems: false` checks nothing. */
export const UNENFORCED = [
  "pattern",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "uniqueItems",
  "contains",
  "minContains",
  "maxContains",
  "patternProperties",
  "propertyNames",
  "dependentRequired",
  "dependentSchemas",
  "dependencies",
  "not",
  "if",
  "then",
  "else",
  "unevaluatedProperties",
  "unevaluatedItems",
] as const;

/** Keywords that shape the value; a $ref or anyOf/oneOf/allOf beside them is not supported. */
export const SHAPING = [
  "type",
  "enum",
  "const",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "minLength",
  "maxLength",
  "minProperties",
  "maxProperties",
  "format",
] as const;

/** Keywords that stand for other schemas: each must be the only shaping keyword of its schema. */
export const COMBINATORS = ["$ref", "anyOf", "oneOf", "allOf"] as const;

/** A JSON object (not an array, not null). */
export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** A key's value when the object itself has it: never one inherited from a prototype. */
export const own = (object: Record<string, unknown>, key: string): unknown =>
  Object.hasOwn(object, key) ? object[key] : undefined;

/** The value `ref` (a JSON pointer in a URI fragment) names inside `root`, if any. */
export const resolvePointer = (root: unknown, ref: string): unknown => {
  if (ref === "#") return root;
  if (!ref.startsWith("#/")) return undefined;
  let current: unknown = root;
  for (const raw of ref.slice(2).split("/")) {
    let token: string;
    try {
      token = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    } catch {
      return undefined;
    }
    if (Array.isArray(current) && /^(0|[1-9][0-9]*)$/.test(token)) current = current[+token];
    else if (isObject(current) && Object.hasOwn(current, token)) current = current[token];
    else return undefined;
  }
  return current;
};
