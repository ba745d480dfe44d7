import { describe, expect, it } from "vitest";
import { base64Of, embeddingList } from "./responses.js";

const decode = (text: string): number[] => {
  const bytes = Buffer.from(text, "base64");
  return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
};

describe("base64Of", () => {
  it.each([
    [[], ""],
    [[1], "AACAPw=="],
    [[3, 0.5, -0.5], "AABAQAAAAD8AAAC/"],
  ])("%j → %s (little-endian float32)", (vector, expected) => {
    expect(base64Of(vector)).toBe(expected);
  });

  it("round-trips float32 values exactly, and rounds others as float32 does", () => {
    const float32 = [Math.fround(0.1), Math.fround(-1e-7), 123.5];
    expect(decode(base64Of(float32))).toEqual(float32);
    expect(decode(base64Of([0.1]))).toEqual([Math.fround(0.1)]);
  });
});

describe("embeddingList", () => {
  it("lists vectors as floats by default and as base64 when asked", () => {
    const vectors = [[1], [3, 0.5, -0.5]];
    expect(embeddingList("m", vectors, 4).data.map((item) => item.embedding)).toEqual(vectors);
    const base64 = embeddingList("m", vectors, 4, "base64");
    expect(base64.data.map((item) => item.embedding)).toEqual(["AACAPw==", "AABAQAAAAD8AAAC/"]);
    expect(base64.usage).toEqual({ prompt_tokens: 4, total_tokens: 4 });
  });
});
