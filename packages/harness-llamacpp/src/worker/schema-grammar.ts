import { FORMAT_RULES, GrammarRules, list, literal } from "./gbnf.js";
import {
  COMBINATORS,
  isObject,
  own,
  PRIMITIVES,
  resolvePointer,
  SCHEMA_LIMITS,
  SchemaError,
  SHAPING,
  TYPES,
  UNENFORCED,
} from "./schema-keywords.js";

// A client's JSON Schema as a llama.cpp grammar (GBNF) that only lets the model write JSON the
// schema accepts, and as a schema node-llama-cpp's chat wrappers can document to the model.
// node-llama-cpp's own JSON Schema grammars are not used: they write integers with exponents
// (1e999 parses to Infinity), allow newlines a plain-text chat template reads as the end of a
// turn, answer an unknown keyword (anyOf, a `#/definitions/` $ref) with `null` only, and check
// string lengths in UTF-16 units where they generated code points.
//
// Every declared property is written, in order (optional ones too, which the schema allows).
// Keywords fall in three groups:
// - shaped by the grammar: type, enum, const, properties, required, additionalProperties,
//   items, prefixItems, min/maxItems, min/maxLength, min/maxProperties, anyOf, oneOf, allOf of
//   one schema, $ref to this document (`#`, `#/$defs/…`, `#/definitions/…`), format date,
//   time, date-time and uuid;
// - value checks a grammar cannot make (pattern, minimum, maximum, multipleOf, uniqueItems,
//   other formats…): refused under `strict`, otherwise shown to the model in the tool's
//   documentation and left to it, as OpenAI's own non-strict mode does;
// - annotations and unknown keywords (title, description, default, examples…): ignored, as the
//   JSON Schema specification says.

export { SCHEMA_LIMITS, SchemaError } from "./schema-keywords.js";

export interface CompiledSchema {
  /** The GBNF grammar, whose root is a value the schema accepts. */
  readonly grammar: string;
  /** The schema in node-llama-cpp's terms (GbnfJsonSchema), for documentation only. */
  readonly docs: Record<string, unknown>;
  /** Subschemas compiled, against a budget shared by several schemas (a request's tools). */
  readonly nodes: number;
}

type Docs = Record<string, unknown>;

interface Compiled {
  readonly rule: string;
  readonly docs: Docs;
}

const ANY_DOCS: Docs = {
  oneOf: [
    { type: ["string", "number", "boolean", "null"] },
    { type: "array" },
    { type: "object", additionalProperties: true },
  ],
};

class Compiler {
  readonly rules = new GrammarRules();
  readonly #root: unknown;
  readonly #strict: boolean;
  readonly #base: string;
  nodes = 0;
  #literalChars = 0;
  readonly #refRules = new Map<unknown, string>();
  readonly #refDocs = new Map<unknown, Docs>();

  constructor(root: unknown, strict: boolean, base: string) {
    this.#root = root;
    this.#strict = strict;
    this.#base = base;
  }

  node(schema: unknown, path: string, depth: number): Compiled {
    if (depth > SCHEMA_LIMITS.depth)
      throw new SchemaError(path, `is nested deeper than ${SCHEMA_LIMITS.depth} levels`);
    this.nodes += 1;
    if (this.nodes > SCHEMA_LIMITS.nodes)
      throw new SchemaError(path, `the schema has more than ${SCHEMA_LIMITS.nodes} subschemas`);
    if (schema === true) return { rule: this.rules.shared("value"), docs: ANY_DOCS };
    if (schema === false) throw new SchemaError(path, "is false: no value can match it");
    if (!isObject(schema)) throw new SchemaError(path, "must be a JSON Schema (an object)");
    const notes = this.#unenforced(schema, path);
    const compiled = this.#shape(schema, path, depth);
    const description = own(schema, "description");
    const text = [typeof description === "string" ? description : "", ...notes]
      .filter(Boolean)
      .join(" ");
    return text ? { rule: compiled.rule, docs: { ...compiled.docs, description: text } } : compiled;
  }

  /** Refuses value checks under strict; otherwise says them to the model in the docs. */
  #unenforced(schema: Record<string, unknown>, path: string): string[] {
    for (const keyword of ["$dynamicRef", "$recursiveRef"])
      if (Object.hasOwn(schema, keyword))
        throw new SchemaError(`${path}.${keyword}`, "is not supported: use $ref");
    const notes: string[] = [];
    for (const keyword of UNENFORCED) {
      const value = own(schema, keyword);
      if (value === undefined || (keyword === "uniqueItems" && value === false)) continue;
      if (this.#strict)
        throw new SchemaError(
          `${path}.${keyword}`,
          `${keyword} cannot be enforced by the built-in harness's grammar: remove it, or set strict to false to have it shown to the model without a guarantee`,
        );
      notes.push(`(${keyword}: ${JSON.stringify(value).slice(0, 200)})`);
    }
    return notes;
  }

  #shape(schema: Record<string, unknown>, path: string, depth: number): Compiled {
    const combinator = COMBINATORS.find((keyword) => Object.hasOwn(schema, keyword));
    if (combinator) {
      const others = [...COMBINATORS, ...SHAPING].filter(
        (keyword) => keyword !== combinator && Object.hasOwn(schema, keyword),
      );
      if (others.length > 0)
        throw new SchemaError(
          `${path}.${combinator}`,
          `${combinator} beside ${others.join(", ")} is not supported: move them into its subschemas`,
        );
      if (combinator === "$ref") return this.#ref(own(schema, "$ref"), `${path}.$ref`, depth);
      return this.#combined(combinator, own(schema, combinator), `${path}.${combinator}`, depth);
    }
    if (Object.hasOwn(schema, "enum")) {
      const values = own(schema, "enum");
      if (!Array.isArray(values) || values.length === 0)
        throw new SchemaError(`${path}.enum`, "must be a non-empty list");
      if (values.length > SCHEMA_LIMITS.enumValues)
        throw new SchemaError(`${path}.enum`, `lists more than ${SCHEMA_LIMITS.enumValues} values`);
      const rule = values.map((value) => this.#literal(value, `${path}.enum`)).join(" | ");
      return { rule: this.rules.add(rule), docs: { enum: values } };
    }
    if (Object.hasOwn(schema, "const")) {
      const value = own(schema, "const");
      return {
        rule: this.rules.add(this.#literal(value, `${path}.const`)),
        docs: { const: value },
      };
    }
    const types = this.#typesOf(schema, path);
    const parts = types.map((type) => this.#ofType(type, schema, path, depth));
    if (parts.length === 1 && parts[0]) return parts[0];
    const rule = this.rules.add(parts.map((part) => part.rule).join(" | "));
    return types.every((type) => PRIMITIVES.has(type)) && !Object.hasOwn(schema, "format")
      ? { rule, docs: { type: types } }
      : { rule, docs: { oneOf: parts.map((part) => part.docs) } };
  }

  #literal(value: unknown, path: string): string {
    const text = JSON.stringify(value);
    if (text === undefined) throw new SchemaError(path, "holds a value that is not JSON");
    this.#literalChars += text.length;
    if (this.#literalChars > SCHEMA_LIMITS.literalChars)
      throw new SchemaError(path, "the schema's names and values are too long in all");
    return literal(text);
  }

  #ref(ref: unknown, path: string, depth: number): Compiled {
    if (typeof ref !== "string") throw new SchemaError(path, "must be a string");
    const target = resolvePointer(this.#root, ref);
    if (target === undefined || (typeof target !== "boolean" && !isObject(target)))
      throw new SchemaError(
        path,
        `${JSON.stringify(ref.slice(0, 200))} does not name a schema in this document (only "#", "#/$defs/…" and other pointers into the schema are supported)`,
      );
    const known = this.#refRules.get(target);
    if (known) return { rule: known, docs: this.#refDocs.get(target) ?? ANY_DOCS };
    const rule = this.rules.reserve();
    this.#refRules.set(target, rule);
    const targetPath = `${this.#base}${ref.slice(1).replaceAll("/", ".")}`;
    const compiled = this.node(target, targetPath, depth + 1);
    this.rules.define(rule, compiled.rule);
    this.#refDocs.set(target, compiled.docs);
    return { rule, docs: compiled.docs };
  }

  #combined(keyword: string, schemas: unknown, path: string, depth: number): Compiled {
    if (!Array.isArray(schemas) || schemas.length === 0)
      throw new SchemaError(path, "must be a non-empty list of schemas");
    if (keyword === "allOf") {
      if (schemas.length > 1)
        throw new SchemaError(path, "allOf with more than one schema is not supported");
      return this.node(schemas[0], `${path}[0]`, depth + 1);
    }
    const parts = schemas.map((schema, index) => this.node(schema, `${path}[${index}]`, depth + 1));
    return {
      rule: this.rules.add(parts.map((part) => part.rule).join(" | ")),
      docs: { oneOf: parts.map((part) => part.docs) },
    };
  }

  #typesOf(schema: Record<string, unknown>, path: string): string[] {
    const type = own(schema, "type");
    if (type === undefined) {
      const has = (keywords: readonly string[]) =>
        keywords.some((key) => Object.hasOwn(schema, key));
      if (has(["properties", "required", "additionalProperties", "minProperties", "maxProperties"]))
        return ["object"];
      if (has(["items", "prefixItems", "minItems", "maxItems"])) return ["array"];
      if (has(["minLength", "maxLength", "format"])) return ["string"];
      return ["any"];
    }
    const types = Array.isArray(type) ? type : [type];
    if (types.length === 0) throw new SchemaError(`${path}.type`, "must not be an empty list");
    for (const item of types)
      if (typeof item !== "string" || !TYPES.has(item))
        throw new SchemaError(
          `${path}.type`,
          `${JSON.stringify(item)} is not a JSON Schema type (string, number, integer, boolean, null, object, array)`,
        );
    return [...new Set(types as string[])];
  }

  /** A count keyword's value; `cap` lowers a maximum to what a grammar holds. */
  #count(schema: Record<string, unknown>, keyword: string, path: string, cap: boolean) {
    const value = own(schema, keyword);
    if (value === undefined) return undefined;
    if (!Number.isSafeInteger(value) || (value as number) < 0)
      throw new SchemaError(`${path}.${keyword}`, "must be a non-negative integer");
    if ((value as number) <= SCHEMA_LIMITS.count) return value as number;
    if (cap) return SCHEMA_LIMITS.count;
    throw new SchemaError(`${path}.${keyword}`, `must be at most ${SCHEMA_LIMITS.count}`);
  }

  #bounds(schema: Record<string, unknown>, path: string, what: "Length" | "Items" | "Properties") {
    const min = this.#count(schema, `min${what}`, path, false) ?? 0;
    const max = this.#count(schema, `max${what}`, path, true);
    if (max !== undefined && max < min)
      throw new SchemaError(`${path}.max${what}`, `is less than min${what}: no value can match`);
    return { min, max };
  }

  #ofType(type: string, schema: Record<string, unknown>, path: string, depth: number): Compiled {
    if (type === "any") return { rule: this.rules.shared("value"), docs: ANY_DOCS };
    if (type === "object") return this.#object(schema, path, depth);
    if (type === "array") return this.#array(schema, path, depth);
    if (type !== "string") return { rule: this.rules.shared(type), docs: { type } };
    const format = own(schema, "format");
    if (format !== undefined) {
      if (typeof format === "string" && Object.hasOwn(FORMAT_RULES, format)) {
        for (const used of ["date", "time", "uuid"])
          if (FORMAT_RULES[format]?.includes(` ${used} `)) this.rules.shared(used);
        return { rule: this.rules.add(FORMAT_RULES[format] ?? ""), docs: { type, format } };
      }
      if (this.#strict)
        throw new SchemaError(
          `${path}.format`,
          `format ${JSON.stringify(format)} cannot be enforced by the built-in harness (date, time, date-time and uuid can)`,
        );
    }
    const { min, max } = this.#bounds(schema, path, "Length");
    if (min === 0 && max === undefined)
      return { rule: this.rules.shared("string"), docs: { type } };
    this.rules.shared("char");
    const count = max === undefined ? `{${min},}` : min === max ? `{${min}}` : `{${min},${max}}`;
    const docs = {
      type,
      ...(min > 0 ? { minLength: min } : {}),
      ...(max !== undefined ? { maxLength: max } : {}),
    };
    return { rule: this.rules.add(`"\\"" char${count} "\\""`), docs };
  }

  #object(schema: Record<string, unknown>, path: string, depth: number): Compiled {
    const properties = own(schema, "properties") ?? {};
    if (!isObject(properties)) throw new SchemaError(`${path}.properties`, "must be an object");
    const required = own(schema, "required") ?? [];
    if (!Array.isArray(required) || !required.every((key) => typeof key === "string"))
      throw new SchemaError(`${path}.required`, "must be a list of property names");
    const additional = own(schema, "additionalProperties");
    const { min, max } = this.#bounds(schema, path, "Properties");
    // Required names without a schema of their own take additionalProperties' (any by default).
    const declared = new Map<string, unknown>(Object.entries(properties));
    for (const key of required as string[])
      if (!declared.has(key)) {
        if (additional === false)
          throw new SchemaError(`${path}.required`, `${key} is required but not allowed`);
        declared.set(key, additional ?? true);
      }
    if (declared.size === 0) return this.#map(additional, min, max, path, depth);
    const requiredSet = new Set(required as string[]);
    // Optional properties are written too, in order, as long as maxProperties leaves room.
    const room = (max ?? declared.size) - requiredSet.size;
    if (room < 0)
      throw new SchemaError(`${path}.maxProperties`, "is less than the required properties");
    const optional = [...declared.keys()].filter((key) => !requiredSet.has(key)).slice(0, room);
    const kept = new Set([...requiredSet, ...optional]);
    const written = [...declared].filter(([key]) => kept.has(key));
    if (min > written.length)
      throw new SchemaError(
        `${path}.minProperties`,
        "asks for more properties than the schema declares: not supported",
      );
    const pairs: string[] = [];
    const docs: Docs = {};
    for (const [key, value] of written) {
      const compiled = this.node(value, `${path}.properties.${key}`, depth + 1);
      pairs.push(`${this.#literal(key, `${path}.properties`)} ws ":" ws ${compiled.rule}`);
      docs[key] = compiled.docs;
    }
    return {
      rule: this.rules.add(list("{", "}", pairs, undefined)),
      docs: { type: "object", properties: docs },
    };
  }

  /** An object without declared properties: a map whose values match `additional`. */
  #map(additional: unknown, min: number, max: number | undefined, path: string, depth: number) {
    if (additional === false) {
      if (min > 0) throw new SchemaError(`${path}.minProperties`, "no property is allowed");
      return { rule: this.rules.add('"{" ws "}"'), docs: { type: "object", properties: {} } };
    }
    const value = this.node(additional ?? true, `${path}.additionalProperties`, depth + 1);
    const pair = this.rules.add(`${this.rules.shared("string")} ws ":" ws ${value.rule}`);
    return {
      rule: this.rules.add(list("{", "}", [], { rule: pair, min, max })),
      docs: { type: "object", additionalProperties: value.docs },
    };
  }

  #array(schema: Record<string, unknown>, path: string, depth: number): Compiled {
    const items = own(schema, "items");
    // Draft 2019's tuples (`items` as a list, then `additionalItems`) read as 2020's.
    const tuple = Array.isArray(items) ? items : (own(schema, "prefixItems") ?? []);
    const rest = Array.isArray(items) ? own(schema, "additionalItems") : items;
    if (!Array.isArray(tuple)) throw new SchemaError(`${path}.prefixItems`, "must be a list");
    const { min, max } = this.#bounds(schema, path, "Items");
    const written = Math.min(tuple.length, max ?? tuple.length);
    if (rest === false && min > tuple.length)
      throw new SchemaError(`${path}.minItems`, "is more than the items allowed");
    const fixed = tuple
      .slice(0, written)
      .map((item, index) => this.node(item, `${path}.prefixItems[${index}]`, depth + 1));
    const extra = rest === false ? undefined : this.node(rest ?? true, `${path}.items`, depth + 1);
    const rule = list(
      "[",
      "]",
      fixed.map((item) => item.rule),
      extra && {
        rule: extra.rule,
        min: Math.max(0, min - written),
        max: max === undefined ? undefined : max - written,
      },
    );
    return {
      rule: this.rules.add(rule),
      docs: {
        type: "array",
        ...(extra ? { items: extra.docs } : {}),
        ...(fixed.length > 0 ? { prefixItems: fixed.map((item) => item.docs) } : {}),
        ...(min > 0 ? { minItems: min } : {}),
        ...(max !== undefined ? { maxItems: max } : {}),
      },
    };
  }
}

/**
 * Compiles `schema` (at `path` in the request, for error messages). `strict` refuses value
 * checks the grammar cannot make instead of leaving them to the model. Throws SchemaError.
 */
export const compileSchema = (
  schema: unknown,
  options: { readonly strict: boolean; readonly path: string },
): CompiledSchema => {
  const compiler = new Compiler(schema, options.strict, options.path);
  const root = compiler.node(schema, options.path, 0);
  return { grammar: compiler.rules.text(root.rule), docs: root.docs, nodes: compiler.nodes };
};
