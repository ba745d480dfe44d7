import { describe, expect, it } from "vitest";
import { AffinityTable } from "./affinity-table.js";

// The conversation → replica memory: every call takes its `now`, so time is only what the test
// says it is.

describe("AffinityTable", () => {
  it("remembers a conversation's replica until its TTL runs out", () => {
    const table = new AffinityTable(1000);
    table.set("conv", "node-a", 0);
    expect(table.get("conv", 0)).toBe("node-a");
    expect(table.get("conv", 999)).toBe("node-a");
    expect(table.get("conv", 1000)).toBeUndefined();
    // An expired entry is gone, not merely hidden.
    expect(table.size).toBe(0);
  });

  it("counts the TTL from the last set, which also moves the conversation", () => {
    const table = new AffinityTable(1000);
    table.set("conv", "node-a", 0);
    table.set("conv", "node-b", 800);
    expect(table.get("conv", 1500)).toBe("node-b");
    expect(table.get("conv", 1800)).toBeUndefined();
  });

  it("does not extend the TTL on a read", () => {
    const table = new AffinityTable(1000);
    table.set("conv", "node-a", 0);
    expect(table.get("conv", 900)).toBe("node-a");
    expect(table.get("conv", 1000)).toBeUndefined();
  });

  it("drops expired entries when a new one is set", () => {
    const table = new AffinityTable(1000);
    table.set("old-1", "node-a", 0);
    table.set("old-2", "node-a", 100);
    table.set("fresh", "node-b", 500);
    expect(table.size).toBe(3);
    table.set("new", "node-c", 1050);
    expect(table.size).toBe(3);
    table.set("newer", "node-c", 1200);
    expect(table.size).toBe(3);
    expect(table.get("fresh", 1200)).toBe("node-b");
  });

  it("keeps at most maxEntries, dropping the least recently set first", () => {
    const table = new AffinityTable(60_000, 3);
    table.set("a", "node-a", 0);
    table.set("b", "node-b", 1);
    table.set("c", "node-c", 2);
    // Setting a again makes it the most recent: b is now the oldest.
    table.set("a", "node-a", 3);
    table.set("d", "node-d", 4);
    expect(table.size).toBe(3);
    expect(table.get("b", 5)).toBeUndefined();
    expect(table.get("a", 5)).toBe("node-a");
    expect(table.get("c", 5)).toBe("node-c");
    expect(table.get("d", 5)).toBe("node-d");
  });

  it("stays within its bound however many conversations come", () => {
    const table = new AffinityTable(60_000, 100);
    for (let i = 0; i < 10_000; i += 1) table.set(`conv-${i}`, "node-a", i);
    expect(table.size).toBe(100);
    expect(table.get("conv-9999", 10_000)).toBe("node-a");
    expect(table.get("conv-9899", 10_000)).toBeUndefined();
  });
});
