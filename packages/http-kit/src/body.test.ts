import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { BodyBudget, bodyBudgetFor, defaultBufferedBytes } from "./body.js";

const MiB = 2 ** 20;

/** A response that only closes, which is all a charge listens to. */
const response = () => new EventEmitter() as unknown as ServerResponse;

describe("BodyBudget", () => {
  it("takes bytes up to its limit and refuses the request that would pass it", () => {
    const budget = new BodyBudget(100);
    const a = budget.charge(response());
    const b = budget.charge(response());
    expect(a.take(60)).toBe(true);
    expect(b.take(41)).toBe(false);
    expect(budget.used).toBe(60);
    expect(b.take(40)).toBe(true);
    expect(budget.used).toBe(100);
  });

  it("gives a request's bytes back once, when its response closes", () => {
    const budget = new BodyBudget(100);
    const res = response();
    const charge = budget.charge(res);
    charge.take(30);
    charge.take(20);
    res.emit("close");
    res.emit("close");
    expect(budget.used).toBe(0);
    // A closed response takes nothing more.
    expect(charge.take(10)).toBe(false);
    expect(budget.used).toBe(0);
  });

  it("gives back what a body did not use of its declared length, never more than it took", () => {
    const budget = new BodyBudget(100);
    const res = response();
    const charge = budget.charge(res);
    charge.take(50);
    charge.giveBack(20);
    expect(budget.used).toBe(30);
    charge.giveBack(1000);
    expect(budget.used).toBe(0);
    res.emit("close");
    expect(budget.used).toBe(0);
  });

  it.each([
    [512 * MiB, 64 * MiB],
    [4 * 1024 * MiB, 256 * MiB],
    [24 * 1024 * MiB, 1024 * MiB],
    [512 * 1024 * MiB, 1024 * MiB],
  ])("defaults to 1/16 of %d bytes of memory, within 64 MiB and 1 GiB", (memory, expected) => {
    expect(defaultBufferedBytes(memory)).toBe(expected);
  });

  it("takes max_buffered_mb when the config has it", () => {
    expect(bodyBudgetFor(3).limitBytes).toBe(3 * MiB);
    expect(bodyBudgetFor(undefined).limitBytes).toBeGreaterThanOrEqual(64 * MiB);
  });
});
