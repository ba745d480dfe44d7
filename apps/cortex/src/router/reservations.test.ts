import { replicaKey } from "@cortex/routing";
import { describe, expect, it } from "vitest";
import { Reservations } from "./reservations.js";

describe("Reservations", () => {
  it("releases exactly once and wakes the model's waiters each time a slot frees", () => {
    const woken: string[] = [];
    const reservations = new Reservations((model) => woken.push(model));
    const release = reservations.take("a", "m", 1);
    reservations.take("a", "m", 2);
    expect(reservations.live.reserved?.get(replicaKey("a", "m"))).toBe(2);
    release();
    release();
    expect(reservations.live.reserved?.get(replicaKey("a", "m"))).toBe(1);
    expect(reservations.total).toBe(1);
    expect(woken).toEqual(["m"]);
    expect(reservations.live.lastUsedMs?.get(replicaKey("a", "m"))).toBe(2);
  });

  it("remembers what was in flight when a node's poll was sent, once that poll is applied", () => {
    const reservations = new Reservations();
    const releases = [reservations.take("a", "m", 0), reservations.take("a", "m", 0)];
    reservations.take("b", "m", 0);
    reservations.markSent("a");
    for (const release of releases) release();
    // Not applied yet: nothing known about node a's report.
    expect(reservations.live.reservedAtPoll?.get(replicaKey("a", "m"))).toBeUndefined();
    reservations.markApplied("a");
    expect(reservations.live.reservedAtPoll?.get(replicaKey("a", "m"))).toBe(2);
    expect(reservations.live.reservedAtPoll?.has(replicaKey("b", "m"))).toBe(false);
    // The next applied poll replaces the node's entries.
    reservations.markSent("a");
    reservations.markApplied("a");
    expect(reservations.live.reservedAtPoll?.has(replicaKey("a", "m"))).toBe(false);
  });

  it("counts a request started while the poll was out as cortex's in that poll's answer", () => {
    const reservations = new Reservations();
    reservations.markSent("a");
    // Sent after the poll left, answered by the neuron after it arrived: the neuron's report
    // (in_flight 1) is this request.
    const release = reservations.take("a", "m", 0);
    reservations.markApplied("a");
    release();
    expect(reservations.live.reservedAtPoll?.get(replicaKey("a", "m"))).toBe(1);
    expect(reservations.live.reserved?.get(replicaKey("a", "m")) ?? 0).toBe(0);
    // Requests after the answer was applied are not part of it.
    reservations.take("a", "m", 1);
    expect(reservations.live.reservedAtPoll?.get(replicaKey("a", "m"))).toBe(1);
  });
});
