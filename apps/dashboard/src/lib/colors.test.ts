import { describe, expect, it } from "vitest";
import { modelColors, textOn } from "./colors.js";

describe("modelColors", () => {
  it("gives every model its own colour, the same whatever the order", () => {
    const ids = Array.from({ length: 12 }, (_, i) => `model-${i}`);
    const colors = modelColors(ids);
    expect(new Set(ids.map(colors)).size).toBe(12);
    const reversed = modelColors([...ids].reverse());
    expect(ids.map(reversed)).toEqual(ids.map(colors));
  });

  it("keeps a model's colour when unrelated models come and go, unless they collide", () => {
    const hashed = modelColors([]);
    const others = ["llama", "mixtral", "gemma", "phi", "mistral"];
    const apart = others.find((id) => hashed(id) !== hashed("qwen"));
    const clash = others.find((id) => hashed(id) === hashed("qwen"));
    expect(apart).toBeDefined();
    expect(modelColors(["qwen", apart ?? ""])("qwen")).toBe(hashed("qwen"));
    // Two on one page never share a colour: one of them moves to the next slot.
    if (clash !== undefined) {
      const both = modelColors(["qwen", clash]);
      expect(both("qwen")).not.toBe(both(clash));
    }
    // A model it does not know still gets a colour.
    expect(hashed("anything")).toMatch(/^#[0-9a-f]{6}$/);
  });
});

describe("textOn", () => {
  it.each([
    ["#ffffff", "#111"],
    ["#edc948", "#111"],
    ["#000000", "#fff"],
    ["#4e79a7", "#fff"],
  ])("%s gets %s", (background, text) => {
    expect(textOn(background)).toBe(text);
  });
});
