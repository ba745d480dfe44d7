import type { RequestFilters } from "@cortex/protocol";

// A model's catalogue `filters` applied to a JSON request body on its way to the neuron
// (llama-swap's `filters`): top-level members named in `strip_params` or `set_params` are
// removed, each time they appear, and those of `set_params` are added with the catalogue's
// values. The members kept go byte for byte as the client sent them: nothing is parsed into a
// tree or serialised again, so numbers keep their precision and text its escapes; only the
// whitespace between members is not kept. Models without filters never come here (their bodies
// go on untouched), and neither do multipart uploads.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

const OPEN = Buffer.from("{");
const SEPARATOR = Buffer.from(",");
const CLOSE = Buffer.from("}");

/** A key whose escaped form is longer than this cannot be a filter's (128 characters). */
const MAX_KEY_BYTES = 128 * 6;

const isSpace = (c: number | undefined): boolean =>
  c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

const skipSpace = (buf: Buffer, from: number): number => {
  let i = from;
  while (isSpace(buf[i])) i += 1;
  return i;
};

/** Just past the string whose opening quote is at `from`. */
const skipString = (buf: Buffer, from: number): number => {
  let i = from + 1;
  while (i < buf.length) {
    const c = buf[i];
    if (c === QUOTE) return i + 1;
    i += c === BACKSLASH ? 2 : 1;
  }
  return buf.length;
};

/** Just past the value starting at `from`: a scalar, or a container with what it holds. */
const skipValue = (buf: Buffer, from: number): number => {
  let depth = 0;
  let i = from;
  while (i < buf.length) {
    const c = buf[i];
    if (c === QUOTE) {
      i = skipString(buf, i);
      if (depth === 0) return i;
      continue;
    }
    if (c === OPEN_BRACE || c === OPEN_BRACKET) depth += 1;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (depth === 0) return i;
      depth -= 1;
      if (depth === 0) return i + 1;
    } else if (depth === 0 && (c === COMMA || isSpace(c))) return i;
    i += 1;
  }
  return i;
};

/** One top-level member: its key, and where it lies from the key's quote to its value's end. */
interface Member {
  readonly key: string | null;
  readonly start: number;
  readonly end: number;
}

/**
 * The top-level members of `body`, a JSON object the inference scan has already checked (so
 * this walks without validating again). A key too long to be a filter's is not decoded (null).
 */
const membersOf = (body: Buffer): Member[] => {
  const members: Member[] = [];
  let i = skipSpace(body, 0) + 1;
  for (;;) {
    i = skipSpace(body, i);
    if (body[i] !== QUOTE) return members;
    const start = i;
    const keyEnd = skipString(body, i);
    const raw = body.subarray(start, keyEnd);
    const key =
      raw.length - 2 > MAX_KEY_BYTES
        ? null
        : raw.includes(BACKSLASH)
          ? (JSON.parse(raw.toString("utf8")) as string)
          : raw.toString("utf8", 1, raw.length - 1);
    // `:` and the value after it.
    i = skipSpace(body, skipSpace(body, keyEnd) + 1);
    const end = skipValue(body, i);
    members.push({ key, start, end });
    i = skipSpace(body, end);
    if (body[i] !== COMMA) return members;
    i += 1;
  }
};

/** A model's filters as a body needs them: the names dropped, and the members added, as JSON. */
interface Compiled {
  readonly dropped: ReadonlySet<string>;
  readonly added: Buffer | null;
}

/** Compiled once per catalogue entry: a reloaded catalogue brings new objects. */
const compiled = new WeakMap<RequestFilters, Compiled>();

const compile = (filters: RequestFilters): Compiled => {
  const known = compiled.get(filters);
  if (known) return known;
  const set = Object.entries(filters.set_params);
  const made: Compiled = {
    dropped: new Set([...filters.strip_params, ...set.map(([name]) => name)]),
    added:
      set.length === 0
        ? null
        : Buffer.from(
            set
              .map(([name, value]) => `${JSON.stringify(name)}:${JSON.stringify(value)}`)
              .join(","),
            "utf8",
          ),
  };
  compiled.set(filters, made);
  return made;
};

/** Whether `filters` change anything: a model with empty ones keeps the untouched body. */
export const hasFilters = (filters: RequestFilters | undefined): filters is RequestFilters =>
  filters !== undefined &&
  (filters.strip_params.length > 0 || Object.keys(filters.set_params).length > 0);

/**
 * `body` (a JSON object, already checked by the inference scan) with `filters` applied to its
 * top-level members, as above. The result is a new buffer; `body` is not changed.
 */
export const applyFilters = (body: Buffer, filters: RequestFilters): Buffer => {
  const { dropped, added } = compile(filters);
  const pieces: Buffer[] = [OPEN];
  let first = true;
  for (const member of membersOf(body)) {
    if (member.key !== null && dropped.has(member.key)) continue;
    if (!first) pieces.push(SEPARATOR);
    pieces.push(body.subarray(member.start, member.end));
    first = false;
  }
  if (added !== null) {
    if (!first) pieces.push(SEPARATOR);
    pieces.push(added);
  }
  pieces.push(CLOSE);
  return Buffer.concat(pieces);
};
