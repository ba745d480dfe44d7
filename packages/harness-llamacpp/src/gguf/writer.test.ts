import { describe, expect, it } from "vitest";
import { SeededRandom } from "./prng.js";
import { buildSpmVocab, SPM_SPACE } from "./vocab.js";
import { encodeGguf, GGUF_MAGIC, type GgufValue } from "./writer.js";

const metadata = (entries: [string, GgufValue][]) => new Map<string, GgufValue>(entries);

describe("encodeGguf", () => {
  it("writes the header, a typed key and an aligned tensor", () => {
    const data = new Float32Array([1, 2, 3, 4, 5, 6]);
    const bytes = encodeGguf(metadata([["general.name", { type: "string", value: "x" }]]), [
      { name: "t", dims: [3, 2], data },
    ]);
    expect(bytes.readUInt32LE(0)).toBe(GGUF_MAGIC);
    expect(bytes.subarray(0, 4).toString("latin1")).toBe("GGUF");
    expect(bytes.readUInt32LE(4)).toBe(3);
    expect(bytes.readBigUInt64LE(8)).toBe(1n); // tensors
    expect(bytes.readBigUInt64LE(16)).toBe(1n); // metadata entries
    // key "general.name", type 8 (string), value "x"
    expect(bytes.readBigUInt64LE(24)).toBe(12n);
    expect(bytes.subarray(32, 44).toString()).toBe("general.name");
    expect(bytes.readUInt32LE(44)).toBe(8);
    // The tensor data is the last 24 bytes and starts on a 32-byte boundary.
    const dataStart = bytes.length - data.byteLength;
    expect(dataStart % 32).toBe(0);
    const tail = bytes.subarray(dataStart);
    expect(Array.from({ length: 6 }, (_, index) => tail.readFloatLE(index * 4))).toEqual([...data]);
  });

  it("aligns every tensor, not only the first", () => {
    const bytes = encodeGguf(metadata([["general.alignment", { type: "uint32", value: 64 }]]), [
      { name: "a", dims: [3], data: new Float32Array([1, 2, 3]) },
      { name: "b", dims: [1], data: new Float32Array([9]) },
    ]);
    expect((bytes.length - 4) % 64).toBe(0);
    expect(bytes.readFloatLE(bytes.length - 4)).toBe(9);
  });

  it("refuses data that does not match its dims, and repeated names", () => {
    expect(() =>
      encodeGguf(new Map(), [{ name: "a", dims: [2, 2], data: new Float32Array(3) }]),
    ).toThrow('tensor "a" has 3 values for dims [2, 2]');
    expect(() =>
      encodeGguf(new Map(), [
        { name: "a", dims: [1], data: new Float32Array(1) },
        { name: "a", dims: [1], data: new Float32Array(1) },
      ]),
    ).toThrow('tensor "a" appears twice');
  });
});

describe("SeededRandom", () => {
  it("repeats for a seed and differs between seeds", () => {
    const a = new SeededRandom(7).uniform(100, 1);
    expect(new SeededRandom(7).uniform(100, 1)).toEqual(a);
    expect(new SeededRandom(8).uniform(100, 1)).not.toEqual(a);
    expect(a.every((value) => value >= -1 && value < 1)).toBe(true);
  });
});

describe("buildSpmVocab", () => {
  const vocab = buildSpmVocab();

  it("has the specials, one token per byte and merged pieces, each once", () => {
    expect(vocab.tokens.slice(0, 3)).toEqual(["<unk>", "<s>", "</s>"]);
    expect(vocab.tokens).toContain("<0x00>");
    expect(vocab.tokens).toContain("<0xFF>");
    expect(vocab.types.filter((type) => type === 6)).toHaveLength(256);
    expect(vocab.tokens).toContain(`${SPM_SPACE}the`);
    expect(new Set(vocab.tokens).size).toBe(vocab.tokens.length);
    expect(vocab.tokens.length).toBeGreaterThan(300);
    expect(vocab.scores).toHaveLength(vocab.tokens.length);
  });

  it("scores a merged piece above its parts, so merges win", () => {
    const score = (token: string) => vocab.scores[vocab.tokens.indexOf(token)] ?? -Infinity;
    expect(score(`${SPM_SPACE}the`)).toBeGreaterThan(score(`${SPM_SPACE}th`));
    expect(score(`${SPM_SPACE}th`)).toBeGreaterThan(score("t"));
  });
});
