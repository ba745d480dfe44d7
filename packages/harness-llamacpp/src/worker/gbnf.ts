// A small writer of llama.cpp grammars (GBNF) for JSON: the rules every JSON grammar shares,
// literals, bounded lists, and a rule table that names each distinct body once. What the
// grammars allow is what JSON.parse reads back, with nothing the model could loop on forever
// outside strings and lists: one optional space where JSON allows whitespace, no newlines (a
// plain-text chat template may end a turn at a newline), numbers of at most 16 digits and
// exponents of at most 2, so every number parses to a finite double, and no character inside
// a string that UTF-8 cannot encode (surrogates, code points past U+10FFFF: llama.cpp reads
// such bytes as one character, node-llama-cpp decodes them as several U+FFFD).

/** The rules of JSON's own pieces, by name. `value`, `object` and `array` are any JSON. */
const SHARED_RULES: Readonly<Record<string, string>> = {
  ws: '" "?',
  char: String.raw`[^"\\\x00-\x1F\x7F\uD800-\uDFFF\U00110000-\U001FFFFF] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})`,
  string: String.raw`"\"" char* "\""`,
  integer: '"-"? ("0" | [1-9] [0-9]{0,15})',
  number: '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?',
  boolean: '"true" | "false"',
  null: '"null"',
  value: "object | array | string | number | boolean | null",
  object: '"{" ws (string ws ":" ws value (ws "," ws string ws ":" ws value)*)? ws "}"',
  array: '"[" ws (value (ws "," ws value)*)? ws "]"',
  // RFC 3339 dates and times, with days a month always has (February: up to the 28th).
  day: '"0" [1-9] | "1" [0-9] | "2" [0-8]',
  "month-day":
    '("0" [13578] | "1" [02]) "-" (day | "29" | "30" | "31") | ("0" [469] | "11") "-" (day | "29" | "30") | "02-" day',
  date: '[0-9]{4} "-" month-day',
  time: '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])',
  uuid: '[0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12}',
};

/** Which shared rules each shared rule refers to, so a grammar carries only those it uses. */
const SHARED_USES: Readonly<Record<string, readonly string[]>> = {
  string: ["char"],
  value: ["object", "array", "string", "number", "boolean", "null"],
  object: ["ws", "string", "value"],
  array: ["ws", "value"],
  "month-day": ["day"],
  date: ["month-day"],
};

/** The JSON string formats a grammar can hold a string to, as the rule that writes them. */
export const FORMAT_RULES: Readonly<Record<string, string>> = {
  date: '"\\"" date "\\""',
  time: '"\\"" time "\\""',
  "date-time": '"\\"" date "T" time "\\""',
  uuid: '"\\"" uuid "\\""',
};

const escapeChar = (char: string): string => {
  if (char === '"') return '\\"';
  if (char === "\\") return "\\\\";
  const code = char.codePointAt(0) ?? 0;
  if (code < 0x20 || code === 0x7f) return `\\x${code.toString(16).padStart(2, "0")}`;
  return char;
};

/** `text` as a GBNF literal that matches exactly it. */
export const literal = (text: string): string => `"${Array.from(text, escapeChar).join("")}"`;

/** `rule{min,max}` in GBNF; `max` undefined is unbounded. */
const repeat = (rule: string, min: number, max: number | undefined): string => {
  if (max === undefined) return min === 0 ? `${rule}*` : `${rule}{${min},}`;
  if (min === max) return `${rule}{${min}}`;
  return `${rule}{${min},${max}}`;
};

/**
 * A comma-separated list between `open` and `close`: the `fixed` items in order, then from `min`
 * to `max` more of `extra` (none when `extra` is undefined). Counts are of the extra items.
 */
export const list = (
  open: string,
  close: string,
  fixed: readonly string[],
  extra: { rule: string; min: number; max: number | undefined } | undefined,
): string => {
  const parts = fixed.map((item, index) => (index === 0 ? item : `ws "," ws ${item}`));
  if (extra && (extra.max === undefined || extra.max > 0)) {
    const next = `(ws "," ws ${extra.rule})`;
    if (fixed.length > 0) {
      parts.push(repeat(next, extra.min, extra.max));
    } else if (extra.min > 0) {
      parts.push(
        extra.rule,
        repeat(next, extra.min - 1, extra.max === undefined ? undefined : extra.max - 1),
      );
    } else {
      const rest = repeat(next, 0, extra.max === undefined ? undefined : extra.max - 1);
      parts.push(`(${extra.rule} ${rest})?`);
    }
  }
  return [literal(open), "ws", ...parts, "ws", literal(close)].join(" ");
};

/**
 * The rules of one grammar. Each distinct body gets one name; a rule that refers to itself (a
 * recursive `$ref`) is reserved first and defined once its body is known.
 */
export class GrammarRules {
  readonly #bodies = new Map<string, string>();
  readonly #names = new Map<string, string>();
  readonly #shared = new Set<string>();

  /** The name of a shared rule (`string`, `value`, `date`…), added with what it uses. */
  shared(name: string): string {
    if (!Object.hasOwn(SHARED_RULES, name)) throw new Error(`no shared GBNF rule ${name}`);
    if (!this.#shared.has(name)) {
      this.#shared.add(name);
      for (const used of SHARED_USES[name] ?? []) this.shared(used);
    }
    return name;
  }

  /** A rule with this body, named once per distinct body. */
  add(body: string): string {
    const existing = this.#names.get(body);
    if (existing) return existing;
    const name = this.reserve();
    this.define(name, body);
    return name;
  }

  reserve(): string {
    const name = `r${this.#bodies.size + 1}`;
    this.#bodies.set(name, "");
    return name;
  }

  define(name: string, body: string): void {
    this.#bodies.set(name, body);
    if (!this.#names.has(body)) this.#names.set(body, name);
  }

  /** The whole grammar, `root` being `rootRule`. */
  text(rootRule: string): string {
    // Every grammar writes JSON with `ws` between tokens, even one whose rules never name it.
    this.shared("ws");
    const lines = [`root ::= ${rootRule}`];
    for (const [name, body] of this.#bodies) lines.push(`${name} ::= ${body}`);
    for (const name of this.#shared) lines.push(`${name} ::= ${SHARED_RULES[name]}`);
    return `${lines.join("\n")}\n`;
  }
}
