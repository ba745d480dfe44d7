import { describe, expect, it } from "vitest";
import {
  homesOf,
  messagesOf,
  peakOf,
  runWaves,
  seeded,
  servedBy,
  shareOnFirstReplica,
  shareOnPreviousReplica,
  type TurnRecord,
  waveLoad,
  waveWindows,
} from "./affinity-load.js";

// The affinity benchmark's measures, on records made up here: no fleet, no clock.

const turn = (
  conversation: number,
  n: number,
  node: string,
  sentMs = 0,
  doneMs = 1,
  wave = 0,
): TurnRecord => ({ conversation, turn: n, wave, status: 200, node, sentMs, doneMs });

describe("the affinity measures", () => {
  // Conversation 0 stays on a; 1 moves to c at turn 2 and stays; 2 visits b once.
  const records = [
    turn(0, 1, "a"),
    turn(0, 2, "a"),
    turn(0, 3, "a"),
    turn(1, 1, "b"),
    turn(1, 2, "c"),
    turn(1, 3, "c"),
    turn(2, 3, "c"),
    turn(2, 1, "c"),
    turn(2, 2, "b"),
  ];

  it("counts turns on the first turn's replica, in turn order whatever the record order", () => {
    // a a a | b (c c) | c (b) c → 3 + 1 + 2 of 9.
    expect(shareOnFirstReplica(records)).toBeCloseTo(6 / 9);
  });

  it("counts turns on the previous turn's replica, first turns included", () => {
    // a a a | b c c | c b c → 3 + 2 + 1 of 9.
    expect(shareOnPreviousReplica(records)).toBeCloseTo(6 / 9);
  });

  it("counts homes and turns per node", () => {
    expect(homesOf(records)).toEqual({ a: 1, b: 1, c: 1 });
    expect(servedBy(records)).toEqual({ a: 3, b: 2, c: 4 });
  });

  it("finds the most spans in flight at once, an end before a start at the same instant", () => {
    const spans = [
      { start: 0, end: 10 },
      { start: 5, end: 15 },
      { start: 10, end: 20 },
      { start: 12, end: 13 },
    ];
    expect(peakOf(spans)).toBe(3);
    expect(peakOf([])).toBe(0);
  });

  it("finds each wave's window, from its first send to its last answer", () => {
    expect(
      waveWindows([
        turn(0, 1, "a", 0, 10, 0),
        turn(1, 1, "a", 2, 12, 0),
        turn(2, 1, "a", 20, 30, 1),
      ]),
    ).toEqual([
      { start: 0, end: 12 },
      { start: 20, end: 30 },
    ]);
  });

  it("sets a wave's busiest peak against ⌈load_factor × clients ÷ replicas⌉", () => {
    const spans = {
      a: [
        { start: 100, end: 110 },
        { start: 101, end: 110 },
        { start: 102, end: 110 },
        // Another wave's: not counted.
        { start: 5, end: 500 },
      ],
      b: [{ start: 103, end: 110 }],
    };
    expect(waveLoad(spans, { start: 100, end: 120 }, 6, ["a", "b", "c"], 1.25)).toEqual({
      clients: 6,
      peak_in_flight: { a: 3, b: 1, c: 0 },
      busiest_peak: 3,
      mean: 2,
      busiest_over_mean: 1.5,
      bound: 3,
    });
  });
});

describe("the conversations", () => {
  it("send the system and first user message on every turn, then the history", () => {
    const third = messagesOf(7, 3);
    expect(third.map((m) => m.role)).toEqual([
      "system",
      "user",
      "assistant",
      "user",
      "assistant",
      "user",
    ]);
    expect(third.slice(0, 2)).toEqual(messagesOf(7, 1));
    expect(messagesOf(7, 1, " (salt)")).not.toEqual(messagesOf(7, 1));
  });

  it("draw the same think times from the same seed", () => {
    const a = seeded(16);
    const b = seeded(16);
    const draws = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(draws);
    for (const draw of draws) expect(draw).toBeGreaterThanOrEqual(0);
    for (const draw of draws) expect(draw).toBeLessThan(1);
  });

  it("run every conversation's turns in order, wave after wave, each by its clients", async () => {
    let inFlight = 0;
    let peak = 0;
    const records = await runWaves({
      waves: [
        { clients: 1, conversations: 2 },
        { clients: 3, conversations: 3 },
      ],
      turns: 3,
      shape: { name: "back to back", maxThinkMs: 0 },
      seed: 1,
      salt: "",
      send: async (messages) => {
        inFlight += 1;
        peak = Math.max(peak, inFlight);
        await Promise.resolve();
        inFlight -= 1;
        return { status: 200, node: `n${(messages.length - 2) / 2}` };
      },
    });
    expect(records).toHaveLength(15);
    expect(peak).toBeLessThanOrEqual(3);
    expect(records.filter((r) => r.wave === 0).map((r) => r.conversation)).toEqual([
      0, 0, 0, 1, 1, 1,
    ]);
    expect(new Set(records.filter((r) => r.wave === 1).map((r) => r.conversation))).toEqual(
      new Set([2, 3, 4]),
    );
    for (const conversation of [0, 1, 2, 3, 4])
      expect(records.filter((r) => r.conversation === conversation).map((r) => r.node)).toEqual([
        "n0",
        "n1",
        "n2",
      ]);
  });
});
