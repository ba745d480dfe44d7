import { describe, expect, it } from "vitest";
import { commonPrefixLength, pickSlot, reusablePrefix, type SlotView } from "./prefix-cache.js";

const slot = (tokens: number[], lastUsed: number): SlotView => ({ tokens, lastUsed });

// A conversation's first turn as a slot holds it after answering (prompt, then the answer), and
// its second turn: the same prompt, the answer, a new user message.
const TURN_1 = [1, 10, 11, 12, 13, 14, 15, 16];
const HELD_1 = [...TURN_1, 40, 41, 42];
const TURN_2 = [...TURN_1, 40, 41, 42, 17, 18, 19];
const OTHER = [1, 10, 90, 91, 92, 93, 94, 95, 96];

describe("commonPrefixLength", () => {
  it.each([
    [[], [], 0],
    [[1, 2, 3], [], 0],
    [[1, 2, 3], [1, 2, 3], 3],
    [[1, 2, 3], [1, 2], 2],
    [[1, 2], [1, 2, 3], 2],
    [[1, 2, 3], [1, 9, 3], 1],
    [[5], [6], 0],
  ])("%j and %j share %i", (a, b, expected) => {
    expect(commonPrefixLength(a, b)).toBe(expected);
  });
});

describe("reusablePrefix", () => {
  it.each([
    ["an empty slot", [], TURN_1, 0],
    ["the next turn of the conversation it holds", HELD_1, TURN_2, HELD_1.length],
    // The same prompt again: everything but the last token, whose output is sampled from.
    ["the same prompt again", HELD_1, TURN_1, TURN_1.length - 1],
    ["a prompt that is a prefix of what it holds", TURN_2, TURN_1, TURN_1.length - 1],
    ["another conversation", HELD_1, OTHER, 2],
    ["a one-token prompt", HELD_1, [1], 0],
    ["an empty prompt", HELD_1, [], 0],
  ])("%s", (_what, held, prompt, expected) => {
    expect(reusablePrefix(held, prompt)).toBe(expected);
  });
});

describe("pickSlot", () => {
  it.each([
    [
      "the slot holding the conversation, though it is the most recently used",
      [slot([], 0), slot(HELD_1, 5), slot(OTHER, 1)],
      TURN_2,
      { index: 1, reused: HELD_1.length },
    ],
    [
      "the longest match among several",
      [slot(TURN_1.slice(0, 5), 1), slot(HELD_1, 2), slot(TURN_1.slice(0, 6), 3)],
      TURN_2,
      { index: 1, reused: HELD_1.length },
    ],
    [
      "the least recently used of equal matches",
      [slot(HELD_1, 7), slot(HELD_1, 3), slot(HELD_1, 9)],
      TURN_2,
      { index: 1, reused: HELD_1.length },
    ],
    [
      "a never used slot when nothing matches usefully (the shared template start is not enough)",
      [slot(HELD_1, 4), slot([], 0), slot(OTHER, 2)],
      [1, 10, 70, 71, 72, 73, 74, 75],
      { index: 1, reused: 0 },
    ],
    [
      "the least recently used slot when nothing matches usefully, counting what it shares",
      [slot(HELD_1, 4), slot(OTHER, 2), slot(TURN_2, 3)],
      [1, 10, 70, 71, 72, 73, 74, 75],
      { index: 1, reused: 2 },
    ],
    [
      "the lowest index among never used slots",
      [slot([], 0), slot([], 0), slot([], 0)],
      TURN_1,
      { index: 0, reused: 0 },
    ],
    [
      "a match covering exactly half of the prompt",
      [slot([1, 2, 3, 4], 1), slot([], 0)],
      [1, 2, 3, 4, 5, 6, 7, 8],
      { index: 0, reused: 4 },
    ],
    [
      "not a match just under half of the prompt",
      [slot([1, 2, 3], 1), slot([], 0)],
      [1, 2, 3, 4, 5, 6, 7, 8],
      { index: 1, reused: 0 },
    ],
    ["the only slot, whatever it holds", [slot(OTHER, 9)], TURN_1, { index: 0, reused: 2 }],
  ])("takes %s", (_what, slots, prompt, expected) => {
    expect(pickSlot(slots, prompt)).toEqual(expected);
  });

  it("takes the least recently used slot when reuse is off (minShare infinite)", () => {
    const slots = [slot(HELD_1, 5), slot(OTHER, 2), slot(TURN_1, 3)];
    expect(pickSlot(slots, TURN_2, Number.POSITIVE_INFINITY)).toEqual({ index: 1, reused: 2 });
  });

  it("needs a slot", () => {
    expect(() => pickSlot([], TURN_1)).toThrow("at least one slot");
  });
});
