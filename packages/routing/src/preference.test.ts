import { describe, expect, it } from "vitest";
import { hash32 } from "./affinity.js";
import { catalogue, fleet, model, node, profile } from "./fleet.fixtures.js";
import { replicaKey } from "./fleet-index.js";
import { resolve } from "./resolve.js";
import type { LiveState } from "./types.js";

// Node priority, open circuits and conversation affinity in resolve (issue 16).

const cat = catalogue(profile("m", { vram_mb: 4000 }));
const withPriority = (name: string, priority: number, models = [model("m")]) => ({
  ...node(name, { models }),
  priority,
});

describe("node priority", () => {
  it("a free slot on the higher-priority node wins over a less loaded one elsewhere", () => {
    const snapshot = fleet(
      withPriority("rented", 0, [model("m", { in_flight: 0 })]),
      withPriority("owned", 10, [model("m", { in_flight: 3 })]),
    );
    expect(resolve(snapshot, cat, { model: "m" })).toMatchObject({ kind: "route", node: "owned" });
  });

  it("spills to the lower priority once the preferred node is full", () => {
    const snapshot = fleet(
      withPriority("rented", 0, [model("m", { in_flight: 0 })]),
      withPriority("owned", 10, [model("m", { in_flight: 4 })]),
    );
    expect(resolve(snapshot, cat, { model: "m" })).toMatchObject({ kind: "route", node: "rented" });
  });

  it("with equal priorities, today's rules: the least loaded", () => {
    const snapshot = fleet(
      withPriority("a", 0, [model("m", { in_flight: 2 })]),
      withPriority("b", 0, [model("m", { in_flight: 1 })]),
    );
    expect(resolve(snapshot, cat, { model: "m" })).toMatchObject({ node: "b" });
  });

  it("a cold load goes to the higher-priority feasible node, even when it has less free memory", () => {
    const snapshot = fleet(withPriority("rented", 0, []), {
      ...withPriority("owned", 5, [model("other", { vram_mb: 12_000 })]),
    });
    expect(
      resolve(snapshot, catalogue(profile("m"), profile("other")), { model: "m" }),
    ).toMatchObject({ kind: "load", plan: { node: "owned" } });
  });
});

describe("open circuits", () => {
  const two = fleet(
    node("a", { models: [model("m")] }),
    node("b", { models: [model("m", { in_flight: 2 })] }),
  );

  it("a replica whose circuit is open gets no new request", () => {
    const live: LiveState = { blocked: new Set([replicaKey("a", "m")]) };
    expect(resolve(two, cat, { model: "m" }, live)).toMatchObject({ node: "b" });
  });

  it("unless it is the only one left", () => {
    const live: LiveState = { blocked: new Set([replicaKey("a", "m"), replicaKey("b", "m")]) };
    expect(resolve(two, cat, { model: "m" }, live)).toMatchObject({ kind: "route", node: "a" });
  });
});

describe("affinity", () => {
  const three = fleet(
    node("a", { models: [model("m")] }),
    node("b", { models: [model("m")] }),
    node("c", { models: [model("m")] }),
  );

  it("sends one conversation to one replica, every time, and says so", () => {
    const request = { model: "m", affinity: { hash: hash32("conv"), loadFactor: 1.25 } };
    const first = resolve(three, cat, request);
    expect(first).toMatchObject({ kind: "route", affinity: "hit" });
    for (let i = 0; i < 5; i += 1) expect(resolve(three, cat, request)).toEqual(first);
  });

  it("a remembered replica is kept when the replica set changes", () => {
    const request = {
      model: "m",
      affinity: { hash: hash32("conv"), loadFactor: 1.25, preferred: replicaKey("c", "m") },
    };
    expect(resolve(three, cat, request)).toMatchObject({ node: "c", affinity: "hit" });
  });

  it("prefers the higher-priority tier for a conversation too", () => {
    const tiers = fleet(withPriority("a", 0), withPriority("b", 0), withPriority("owned", 1));
    const request = { model: "m", affinity: { hash: hash32("x"), loadFactor: 1.25 } };
    expect(resolve(tiers, cat, request)).toMatchObject({ node: "owned" });
  });
});
