import { describe, expect, it } from "vitest";
import { nextSwap, type ResidentWork, type SwapAction, type SwapGroup } from "./swap.js";

const work = (entries: Record<string, [running: number, queued: number]>) =>
  new Map<string, ResidentWork>(
    Object.entries(entries).map(([model, [running, queued]]) => [model, { running, queued }]),
  );

const group = (model: string, sinceMs: number, blockers: string[], waiting = 1): SwapGroup => ({
  model,
  sinceMs,
  waiting,
  blockers,
});

interface Case {
  readonly name: string;
  readonly nowMs: number;
  readonly groups: SwapGroup[];
  readonly work: Map<string, ResidentWork>;
  readonly expected: SwapAction;
}

const MAX_WAIT = 30_000;

const cases: Case[] = [
  {
    name: "nothing waits: nothing to do",
    nowMs: 0,
    groups: [],
    work: work({ a: [3, 0] }),
    expected: { kind: "none" },
  },
  {
    name: "a group of no requests is no group",
    nowMs: 0,
    groups: [group("b", 0, ["a"], 0)],
    work: work({}),
    expected: { kind: "none" },
  },
  {
    name: "the blocker has requests running: wait, at most until the bound",
    nowMs: 1_000,
    groups: [group("b", 0, ["a"])],
    work: work({ a: [2, 0] }),
    expected: { kind: "wait", model: "b", untilMs: 30_000 },
  },
  {
    name: "the blocker has requests queued for a slot: they are its work, keep serving",
    nowMs: 1_000,
    groups: [group("b", 0, ["a"])],
    work: work({ a: [0, 1] }),
    expected: { kind: "wait", model: "b", untilMs: 30_000 },
  },
  {
    name: "the blocker finished its work: swap, serving every request queued for the model",
    nowMs: 4_000,
    groups: [group("b", 1_000, ["a"], 7)],
    work: work({ a: [0, 0] }),
    expected: { kind: "swap", model: "b", evict: ["a"], waiting: 7, waitedMs: 3_000 },
  },
  {
    name: "a blocker the node no longer reports has no work",
    nowMs: 0,
    groups: [group("b", 0, ["gone"])],
    work: work({}),
    expected: { kind: "swap", model: "b", evict: ["gone"], waiting: 1, waitedMs: 0 },
  },
  {
    name: "every blocker must be idle, not just one",
    nowMs: 10,
    groups: [group("c", 0, ["a", "b"])],
    work: work({ a: [0, 0], b: [1, 0] }),
    expected: { kind: "wait", model: "c", untilMs: MAX_WAIT },
  },
  {
    name: "at the bound the blockers drain: they take no new requests",
    nowMs: MAX_WAIT,
    groups: [group("b", 0, ["a"])],
    work: work({ a: [2, 5] }),
    expected: { kind: "drain", model: "b", drain: ["a"] },
  },
  {
    name: "draining, the blocker's queued requests wait for its next turn: swap once none run",
    nowMs: MAX_WAIT + 500,
    groups: [group("b", 0, ["a"], 2)],
    work: work({ a: [0, 5] }),
    expected: { kind: "swap", model: "b", evict: ["a"], waiting: 2, waitedMs: MAX_WAIT + 500 },
  },
  {
    name: "the oldest group goes first when several could",
    nowMs: 5_000,
    groups: [group("c", 2_000, ["a"]), group("b", 1_000, ["a"])],
    work: work({ a: [0, 0] }),
    expected: { kind: "swap", model: "b", evict: ["a"], waiting: 1, waitedMs: 4_000 },
  },
  {
    name: "equal ages go by model id, never by insertion order",
    nowMs: 5_000,
    groups: [group("c", 1_000, ["a"]), group("b", 1_000, ["a"])],
    work: work({ a: [0, 0] }),
    expected: { kind: "swap", model: "b", evict: ["a"], waiting: 1, waitedMs: 4_000 },
  },
  {
    name: "a younger group whose blockers are idle goes while the oldest's are busy",
    nowMs: 5_000,
    groups: [group("b", 1_000, ["a"]), group("d", 2_000, ["c"])],
    work: work({ a: [1, 0], c: [0, 0] }),
    expected: { kind: "swap", model: "d", evict: ["c"], waiting: 1, waitedMs: 3_000 },
  },
  {
    name: "past the bound nobody overtakes the oldest: its blockers drain, the rest wait",
    nowMs: MAX_WAIT + 1_000,
    groups: [group("b", 1_000, ["a"]), group("d", 2_000, ["c"])],
    work: work({ a: [1, 0], c: [0, 0] }),
    expected: { kind: "drain", model: "b", drain: ["a"] },
  },
  {
    name: "a group blocked by nothing (the memory came free) swaps at once",
    nowMs: 0,
    groups: [group("b", 0, [])],
    work: work({ a: [4, 4] }),
    expected: { kind: "swap", model: "b", evict: [], waiting: 1, waitedMs: 0 },
  },
];

describe("nextSwap", () => {
  it.each(cases)("$name", ({ nowMs, groups, work: residents, expected }) => {
    expect(nextSwap({ nowMs, maxWaitMs: MAX_WAIT, groups, work: residents })).toEqual(expected);
  });

  it("is pure: the same state gives the same action and is not modified", () => {
    const groups = [group("c", 2, ["a"]), group("b", 1, ["a"])];
    const state = { nowMs: 3, maxWaitMs: 10, groups, work: work({ a: [1, 0] }) };
    const first = nextSwap(state);
    expect(nextSwap(state)).toEqual(first);
    expect(groups.map((g) => g.model)).toEqual(["c", "b"]);
  });
});
