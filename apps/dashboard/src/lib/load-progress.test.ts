import type { FleetEvent } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { applyLoadEvent, type LoadsInFlight, loadsOf, percentDone } from "./load-progress.js";

const AT = "2025-06-15T12:00:00.000Z";
const run = (events: FleetEvent[]): LoadsInFlight =>
  events.reduce<LoadsInFlight>((loads, event) => applyLoadEvent(loads, event), new Map());

describe("applyLoadEvent", () => {
  it("follows a load from start through progress to its end", () => {
    const started: FleetEvent = {
      type: "load_started",
      at: AT,
      node: "a",
      model: "m",
      evicting: [],
    };
    const progress: FleetEvent = {
      type: "load_progress",
      at: AT,
      node: "a",
      model: "m",
      phase: "downloading",
      bytes: 250,
      total: 1000,
    };
    const during = run([started, progress]);
    const load = loadsOf(during, "m")[0];
    expect(load).toMatchObject({ node: "a", phase: "downloading", startedAt: AT, error: null });
    expect(load && percentDone(load)).toBe(25);
    const done = applyLoadEvent(during, {
      type: "load_finished",
      at: AT,
      node: "a",
      model: "m",
      load_ms: 5,
    });
    expect(loadsOf(done, "m")).toEqual([]);
  });

  it("keeps a failure with its error, and starts afresh on the next load", () => {
    const failed = run([
      {
        type: "load_started",
        at: AT,
        node: "a",
        model: "m",
        evicting: [{ node: "a", model: "x" }],
      },
      { type: "load_failed", at: AT, node: "a", model: "m", error: "harness exited" },
    ]);
    expect(loadsOf(failed, "m")).toEqual([
      expect.objectContaining({ phase: "failed", error: "harness exited" }),
    ]);
    const again = applyLoadEvent(failed, {
      type: "load_started",
      at: AT,
      node: "a",
      model: "m",
      evicting: [],
    });
    expect(loadsOf(again, "m")).toEqual([
      expect.objectContaining({ phase: "queued", error: null }),
    ]);
  });

  it("keeps loads of one model on two nodes apart and ignores other events", () => {
    const loads = run([
      { type: "load_started", at: AT, node: "a", model: "m", evicting: [] },
      { type: "load_started", at: AT, node: "b", model: "m", evicting: [] },
      { type: "evicted", at: AT, node: "a", model: "x" },
    ]);
    expect(loadsOf(loads, "m").map((l) => l.node)).toEqual(["a", "b"]);
  });

  it.each([
    [{ phase: "starting", bytes: null, total: null }, null],
    [{ phase: "ready", bytes: null, total: null }, 100],
    [{ phase: "downloading", bytes: 5, total: 0 }, null],
    [{ phase: "downloading", bytes: 2000, total: 1000 }, 100],
  ])("percentDone(%o) = %s", (fields, pct) => {
    expect(percentDone({ model: "m", node: "a", startedAt: AT, error: null, ...fields })).toBe(pct);
  });
});
