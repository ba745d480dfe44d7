// A byte-level SentencePiece (SPM) vocabulary in the shape llama.cpp's "llama" tokenizer reads:
// three special tokens, one token per byte (so any text can be tokenized), single characters,
// and merged pieces of common English words so tokenization is not only one character at a time.

/** llama.cpp's token types (llama_token_type). */
const NORMAL = 1;
const UNKNOWN = 2;
const CONTROL = 3;
const BYTE = 6;

/** SentencePiece writes a space as U+2581 ("▁"); llama.cpp turns it back into a space. */
export const SPM_SPACE = "\u2581";

export interface SpmVocab {
  readonly tokens: readonly string[];
  readonly scores: readonly number[];
  readonly types: readonly number[];
  readonly unknownId: number;
  readonly bosId: number;
  readonly eosId: number;
}

// Words whose prefixes become merged pieces ("▁t", "▁th", "▁the", …).
const WORDS = [
  "the",
  "and",
  "hello",
  "world",
  "to",
  "of",
  "in",
  "is",
  "it",
  "you",
  "that",
  "for",
  "on",
  "with",
  "as",
  "are",
  "this",
  "be",
  "at",
  "or",
  "from",
  "model",
  "token",
  "tiny",
  "test",
];

// Common pieces inside words.
const PIECES = ["th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ing", "ed", "es"];

export const buildSpmVocab = (): SpmVocab => {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const seen = new Set<string>();
  const add = (token: string, score: number, type: number): void => {
    if (seen.has(token)) return;
    seen.add(token);
    tokens.push(token);
    scores.push(score);
    types.push(type);
  };

  add("<unk>", 0, UNKNOWN);
  add("<s>", 0, CONTROL);
  add("</s>", 0, CONTROL);
  // Byte fallback: llama.cpp looks these up by exactly this spelling (upper-case hex).
  for (let byte = 0; byte < 256; byte++) {
    add(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`, 0, BYTE);
  }
  // Merges are chosen by score, highest first: longer pieces score higher so they win.
  add(SPM_SPACE, -1, NORMAL);
  for (let code = 0x21; code < 0x7f; code++) add(String.fromCharCode(code), -2, NORMAL);
  for (const piece of PIECES) add(piece, -3 + piece.length, NORMAL);
  for (const word of WORDS) {
    const spelled = `${SPM_SPACE}${word}`;
    for (let end = 2; end <= spelled.length; end++) add(spelled.slice(0, end), -3 + end, NORMAL);
  }
  return { tokens, scores, types, unknownId: 0, bosId: 1, eosId: 2 };
};
