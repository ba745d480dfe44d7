// A validating JSON scanner that builds no tree. The inference path needs two fields of a body
// it forwards byte for byte (`model`, `stream`); JSON.parse would build the whole tree, and a
// deeply nested or very wide body becomes hundreds of MiB of heap (a 15 MiB body nested 8
// million levels deep took ~300 MiB). The scanner checks the whole body is JSON, bounds its
// nesting depth, and returns where the wanted top-level members' values lie; nothing else is
// kept.

/** Where a value lies in the body: `[start, end)` byte offsets. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

export type ScanProblem = "empty" | "invalid" | "too_deep" | "not_object";

export class JsonScanError extends Error {
  readonly problem: ScanProblem;
  /** The byte offset where the scan stopped. */
  readonly at: number;

  constructor(problem: ScanProblem, at: number) {
    super(`${problem} at byte ${at}`);
    this.name = "JsonScanError";
    this.problem = problem;
    this.at = at;
  }
}

const OBJECT = 1;
const ARRAY = 2;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;

/** Keys longer than this (escaped) cannot be a wanted name, so they are never decoded. */
const MAX_WANTED_KEY_BYTES = 256;

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= ZERO && c <= NINE;

const isHex = (c: number | undefined): boolean =>
  c !== undefined &&
  ((c >= ZERO && c <= NINE) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));

const skipWhitespace = (buf: Uint8Array, from: number): number => {
  let i = from;
  for (;;) {
    const c = buf[i];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i += 1;
    else return i;
  }
};

/** The end of the string starting at `from` (a quote), just past its closing quote. */
const skipString = (buf: Uint8Array, from: number): number => {
  const n = buf.length;
  let i = from + 1;
  while (i < n) {
    const c = buf[i] as number;
    if (c === QUOTE) return i + 1;
    if (c === BACKSLASH) {
      const e = buf[i + 1];
      if (e === 0x75) {
        if (!(isHex(buf[i + 2]) && isHex(buf[i + 3]) && isHex(buf[i + 4]) && isHex(buf[i + 5])))
          throw new JsonScanError("invalid", i);
        i += 6;
      } else if (
        e === QUOTE ||
        e === BACKSLASH ||
        e === 0x2f ||
        e === 0x62 ||
        e === 0x66 ||
        e === 0x6e ||
        e === 0x72 ||
        e === 0x74
      ) {
        i += 2;
      } else throw new JsonScanError("invalid", i);
    } else if (c < 0x20) throw new JsonScanError("invalid", i);
    else i += 1;
  }
  throw new JsonScanError("invalid", n);
};

const skipNumber = (buf: Uint8Array, from: number): number => {
  let i = from;
  if (buf[i] === MINUS) i += 1;
  if (buf[i] === ZERO) i += 1;
  else if (isDigit(buf[i])) while (isDigit(buf[i])) i += 1;
  else throw new JsonScanError("invalid", i);
  if (buf[i] === 0x2e) {
    i += 1;
    if (!isDigit(buf[i])) throw new JsonScanError("invalid", i);
    while (isDigit(buf[i])) i += 1;
  }
  if (buf[i] === 0x65 || buf[i] === 0x45) {
    i += 1;
    if (buf[i] === 0x2b || buf[i] === MINUS) i += 1;
    if (!isDigit(buf[i])) throw new JsonScanError("invalid", i);
    while (isDigit(buf[i])) i += 1;
  }
  return i;
};

const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

const skipLiteral = (buf: Uint8Array, from: number, literal: readonly number[]): number => {
  for (let k = 0; k < literal.length; k += 1)
    if (buf[from + k] !== literal[k]) throw new JsonScanError("invalid", from + k);
  return from + literal.length;
};

/** A scalar value at `from` (string, number, true, false, null): where it ends. */
const skipScalar = (buf: Uint8Array, from: number): number => {
  const c = buf[from];
  if (c === QUOTE) return skipString(buf, from);
  if (c === 0x74) return skipLiteral(buf, from, TRUE);
  if (c === 0x66) return skipLiteral(buf, from, FALSE);
  if (c === 0x6e) return skipLiteral(buf, from, NULL);
  if (c === MINUS || isDigit(c)) return skipNumber(buf, from);
  throw new JsonScanError("invalid", from);
};

/**
 * Checks that `buf` is one JSON object nested at most `maxDepth` containers deep (the object
 * itself counts as one), and returns the spans of the values of its top-level members named in
 * `wanted`. A repeated member keeps its last value, as JSON.parse does. Throws JsonScanError.
 */
export const scanJsonObject = (
  buf: Uint8Array,
  wanted: ReadonlySet<string>,
  maxDepth: number,
): Map<string, Span> => {
  const n = buf.length;
  const members = new Map<string, Span>();
  const stack = new Uint8Array(Math.max(1, maxDepth));
  let depth = 0;
  let i = skipWhitespace(buf, 0);
  if (n === 0) throw new JsonScanError("empty", 0);
  const topIsObject = buf[i] === OPEN_BRACE;
  /** The wanted top-level member whose value is being read, and where that value starts. */
  let member: string | null = null;
  let memberStart = 0;

  /** Reads `"key" :` at `from` and positions on the value; notes wanted top-level members. */
  const readKey = (from: number): number => {
    if (buf[from] !== QUOTE) throw new JsonScanError("invalid", from);
    const end = skipString(buf, from);
    if (depth === 1 && end - from - 2 <= MAX_WANTED_KEY_BYTES) {
      const raw = Buffer.from(buf.buffer, buf.byteOffset + from, end - from);
      const key = raw.includes(BACKSLASH)
        ? (JSON.parse(raw.toString("utf8")) as string)
        : raw.toString("latin1", 1, raw.length - 1);
      member = wanted.has(key) ? key : null;
    } else if (depth === 1) member = null;
    let at = skipWhitespace(buf, end);
    if (buf[at] !== COLON) throw new JsonScanError("invalid", at);
    at = skipWhitespace(buf, at + 1);
    if (depth === 1) memberStart = at;
    return at;
  };

  for (;;) {
    // A value starts at i.
    const c = buf[i];
    let complete: boolean;
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (depth >= maxDepth) throw new JsonScanError("too_deep", i);
      stack[depth] = c === OPEN_BRACE ? OBJECT : ARRAY;
      depth += 1;
      i = skipWhitespace(buf, i + 1);
      if (buf[i] === (c === OPEN_BRACE ? CLOSE_BRACE : CLOSE_BRACKET)) {
        depth -= 1;
        i += 1;
        complete = true;
      } else {
        if (c === OPEN_BRACE) i = readKey(i);
        complete = false;
      }
    } else {
      i = skipScalar(buf, i);
      complete = true;
    }
    if (!complete) continue;
    // A value ended just before i: close what it completes, then find where the next one starts.
    for (;;) {
      if (depth === 1 && member !== null) {
        members.set(member, { start: memberStart, end: i });
        member = null;
      }
      if (depth === 0) {
        i = skipWhitespace(buf, i);
        if (i !== n) throw new JsonScanError("invalid", i);
        if (!topIsObject) throw new JsonScanError("not_object", 0);
        return members;
      }
      i = skipWhitespace(buf, i);
      const inObject = stack[depth - 1] === OBJECT;
      const d = buf[i];
      if (d === COMMA) {
        i = skipWhitespace(buf, i + 1);
        if (inObject) i = readKey(i);
        break;
      }
      if (d === (inObject ? CLOSE_BRACE : CLOSE_BRACKET)) {
        depth -= 1;
        i += 1;
        continue;
      }
      throw new JsonScanError("invalid", i);
    }
  }
};

/**
 * The spans of the first `max` elements of the array whose value lies at `span`, in a body
 * `scanJsonObject` has already checked (so this walks without validating again); an empty list
 * when the value is not an array.
 */
export const arrayElements = (buf: Uint8Array, span: Span, max: number): Span[] => {
  const elements: Span[] = [];
  if (buf[span.start] !== OPEN_BRACKET) return elements;
  let i = skipWhitespace(buf, span.start + 1);
  while (i < span.end && buf[i] !== CLOSE_BRACKET && elements.length < max) {
    const start = i;
    let depth = 0;
    // One element: strings skipped whole, brackets counted until back at this level.
    for (;;) {
      const c = buf[i];
      if (c === QUOTE) i = skipString(buf, i);
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        depth += 1;
        i += 1;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        if (depth === 0) break;
        depth -= 1;
        i += 1;
      } else if (c === COMMA && depth === 0) break;
      else if (i >= span.end) break;
      else i += 1;
    }
    let end = i;
    while (
      end > start &&
      (buf[end - 1] === 0x20 ||
        buf[end - 1] === 0x0a ||
        buf[end - 1] === 0x0d ||
        buf[end - 1] === 0x09)
    )
      end -= 1;
    elements.push({ start, end });
    if (buf[i] === COMMA) i = skipWhitespace(buf, i + 1);
  }
  return elements;
};
