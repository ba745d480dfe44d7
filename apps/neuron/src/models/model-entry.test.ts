import { ModelStatus } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { canMove, TRANSITIONS } from "./model-entry.js";

// The lifecycle's table, as the README's diagram draws it.

const allowed: [string, string][] = [
  ["loading", "loaded"],
  ["loading", "failed"],
  ["loading", "unloaded"],
  ["loaded", "loading"],
  ["loaded", "unloaded"],
  ["loaded", "recovering"],
  ["loaded", "failed"],
  ["recovering", "loaded"],
  ["recovering", "failed"],
  ["failed", "loading"],
  ["unloaded", "loading"],
];

const every = ModelStatus.options.flatMap((from) =>
  ModelStatus.options.map((to) => [from, to] as const),
);

describe("the lifecycle's transitions", () => {
  it("covers every status", () => {
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...ModelStatus.options].sort());
  });

  it.each(every)("%s → %s", (from, to) => {
    const expected = from === to || allowed.some(([a, b]) => a === from && b === to);
    expect(canMove(from, to)).toBe(expected);
  });
});
