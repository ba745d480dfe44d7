// Reading `usage` from an answer as it passes through cortex, without holding the answer: OpenAI
// answers put it last, in a JSON body and in a stream's final chunk alike. Chunks are never
// decoded on their way through; only the bytes from the last `"usage"` key on are kept.

export interface Usage {
  readonly prompt_tokens: number | null;
  readonly completion_tokens: number | null;
}

/** The most bytes kept: from the last `"usage"` key to the end, or of an error's body. */
const TAIL_BYTES = 16 << 10;

const USAGE_KEY = Buffer.from('"usage"');
const QUOTE = 0x22;

/** The JSON object starting at `start` (a `{`), by matching braces outside strings. */
const objectAt = (text: string, start: number): string | null => {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i += 1) {
    const char = text[i];
    if (inString) {
      if (char === "\\") i += 1;
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === "{") depth += 1;
    else if (char === "}") {
      depth -= 1;
      if (depth === 0) return text.slice(start, i + 1);
    }
  }
  return null;
};

/** The last `usage` object in an answer (a JSON body or the tail of a stream), if any. */
export const usageOf = (text: string): Usage | null => {
  const key = text.lastIndexOf('"usage"');
  if (key < 0) return null;
  const start = text.indexOf("{", key);
  const object = start < 0 ? null : objectAt(text, start);
  if (object === null) return null;
  try {
    const usage = JSON.parse(object) as Record<string, unknown>;
    const count = (value: unknown) => (typeof value === "number" ? value : null);
    return {
      prompt_tokens: count(usage.prompt_tokens),
      completion_tokens: count(usage.completion_tokens),
    };
  } catch {
    return null;
  }
};

/**
 * The end of `chunk` that could be the start of a `"usage"` key cut by the chunk's end (a quote
 * in its last 6 bytes and what follows it); null when there is none.
 */
const keyStartAtEnd = (chunk: Buffer): Buffer | null => {
  for (
    let q = chunk.indexOf(QUOTE, Math.max(0, chunk.length - USAGE_KEY.length + 1));
    q >= 0;
    q = chunk.indexOf(QUOTE, q + 1)
  ) {
    const end = chunk.subarray(q);
    if (USAGE_KEY.subarray(0, end.length).equals(end)) return end;
  }
  return null;
};

/**
 * What an answer leaves for the request log, fed every chunk as it passes. By default it keeps
 * only the bytes from the last `"usage"` key on (none at all until one comes, so a long stream
 * holds nothing); with `whole` it keeps the last TAIL_BYTES, for an error body relayed as text.
 */
export class AnswerTail {
  readonly #whole: boolean;
  /** Kept chunks (from the last key on, or the last TAIL_BYTES); null: nothing worth keeping. */
  #chunks: Buffer[] | null = null;
  #size = 0;
  /** The previous chunk's end, when it could be a key cut in two. */
  #cut: Buffer | null = null;

  constructor(whole = false) {
    this.#whole = whole;
  }

  push(chunk: Buffer): void {
    if (this.#whole) {
      this.#keep(chunk);
      while (this.#chunks && this.#size - (this.#chunks[0]?.length ?? 0) >= TAIL_BYTES)
        this.#size -= this.#chunks.shift()?.length ?? 0;
      return;
    }
    const key = chunk.lastIndexOf(USAGE_KEY);
    if (key >= 0) this.#restart(chunk.subarray(key));
    else if (this.#cut !== null && this.#continuesKey(this.#cut, chunk)) return;
    else if (this.#chunks !== null) {
      this.#keep(chunk);
      // A usage object this long is not one: forget it rather than hold the answer.
      if (this.#size > TAIL_BYTES) this.#chunks = null;
    }
    this.#cut = keyStartAtEnd(chunk);
  }

  /** Whether `chunk` goes on with the key begun by `cut`; it is then kept (or still cut). */
  #continuesKey(cut: Buffer, chunk: Buffer): boolean {
    const rest = USAGE_KEY.subarray(cut.length);
    if (chunk.length < rest.length) {
      // A chunk shorter than the rest of the key: still cut, or no key after all.
      if (!rest.subarray(0, chunk.length).equals(chunk)) return false;
      if (this.#chunks !== null) this.#keep(chunk);
      this.#cut = Buffer.concat([cut, chunk]);
      return true;
    }
    if (!chunk.subarray(0, rest.length).equals(rest)) return false;
    this.#restart(cut);
    this.#keep(chunk);
    this.#cut = keyStartAtEnd(chunk);
    return true;
  }

  #restart(from: Buffer): void {
    this.#chunks = [from];
    this.#size = from.length;
  }

  #keep(chunk: Buffer): void {
    if (this.#chunks === null) this.#chunks = [];
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  #bytes(): Buffer {
    const chunks = this.#chunks ?? [];
    const [only] = chunks;
    return chunks.length === 1 && only ? only : Buffer.concat(chunks);
  }

  /** What was kept, as text (the whole tail of an error body). */
  text(): string {
    return this.#bytes().toString("utf8");
  }

  /** The last `usage` object, decoding nothing when no `"usage"` key passed. */
  usage(): Usage | null {
    if (this.#chunks === null) return null;
    const bytes = this.#bytes();
    const key = bytes.lastIndexOf(USAGE_KEY);
    return key < 0 ? null : usageOf(bytes.toString("utf8", key));
  }
}
