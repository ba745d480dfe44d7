import { describe, expect, it } from "vitest";
import { at, fleet, gpu, model, node } from "./fleet.fixtures.js";
import { indexSnapshot, replicaKey } from "./fleet-index.js";
import { pickReplica } from "./replica.js";
import type { LiveState } from "./types.js";

const replicasOf = (snapshot: ReturnType<typeof fleet>, id = "m") =>
  indexSnapshot(snapshot).byModel.get(id)?.all ?? [];

const pickedNode = (snapshot: ReturnType<typeof fleet>, live?: LiveState): string | undefined =>
  pickReplica(replicasOf(snapshot), live)?.replica.node.name;

describe("pickReplica tie-breaks", () => {
  it.each([
    {
      rule: "fewest in flight wins over recency",
      a: { in_flight: 2, last_accessed: at(600) },
      b: { in_flight: 1, last_accessed: at(1) },
      winner: "b",
    },
    {
      rule: "queued requests count as load",
      a: { in_flight: 1, queued: 2 },
      b: { in_flight: 2 },
      winner: "b",
    },
    {
      rule: "on equal load the least recently used wins",
      a: { last_accessed: at(10) },
      b: { last_accessed: at(300) },
      winner: "b",
    },
    {
      rule: "never used counts as least recently used",
      a: { last_accessed: at(300) },
      b: { last_accessed: null },
      winner: "b",
    },
    {
      rule: "a replica with a free slot beats a full one with fewer requests",
      a: { in_flight: 1, max_concurrency: 1 },
      b: { in_flight: 3, max_concurrency: 8 },
      winner: "b",
    },
  ])("$rule", ({ a, b, winner }) => {
    const snapshot = fleet(
      node("a", { models: [model("m", a)] }),
      node("b", { models: [model("m", b)] }),
    );
    expect(pickedNode(snapshot)).toBe(winner);
  });

  it("on equal load and recency, the node with most free memory wins", () => {
    const snapshot = fleet(
      node("a", { devices: [gpu(0, 24_000)], models: [model("m", { last_accessed: at(5) })] }),
      node("b", { devices: [gpu(0, 48_000)], models: [model("m", { last_accessed: at(5) })] }),
    );
    expect(pickedNode(snapshot)).toBe("b");
  });

  it("on a full tie, the node name decides, whatever the order of the snapshot", () => {
    const same = { last_accessed: at(5) };
    expect(
      pickedNode(
        fleet(node("b", { models: [model("m", same)] }), node("a", { models: [model("m", same)] })),
      ),
    ).toBe("a");
    expect(
      pickedNode(
        fleet(node("a", { models: [model("m", same)] }), node("b", { models: [model("m", same)] })),
      ),
    ).toBe("a");
  });

  it("counts cortex's reservations as in-flight requests", () => {
    const snapshot = fleet(
      node("a", { models: [model("m")] }),
      node("b", { models: [model("m", { in_flight: 1 })] }),
    );
    const live: LiveState = { reserved: new Map([[replicaKey("a", "m"), 2]]) };
    expect(pickedNode(snapshot, live)).toBe("b");
  });

  it("cortex's own recent pick outranks an older last_accessed from the neuron", () => {
    const snapshot = fleet(
      node("a", { models: [model("m", { last_accessed: at(100) })] }),
      node("b", { models: [model("m", { last_accessed: at(50) })] }),
    );
    const live: LiveState = { lastUsedMs: new Map([[replicaKey("a", "m"), Date.parse(at(1))]]) };
    expect(pickedNode(snapshot, live)).toBe("b");
  });

  it("is saturated only when no replica has a free slot", () => {
    const full = fleet(node("a", { models: [model("m", { in_flight: 4 })] }));
    expect(pickReplica(replicasOf(full), undefined)?.saturated).toBe(true);
    const partly = fleet(node("a", { models: [model("m", { in_flight: 3 })] }));
    expect(pickReplica(replicasOf(partly), undefined)?.saturated).toBe(false);
  });

  it("returns null when there is nothing to pick", () => {
    expect(pickReplica([], undefined)).toBeNull();
  });

  it("spreads repeated picks evenly over equally loaded replicas", () => {
    const snapshot = fleet(
      node("a", { models: [model("m", { last_accessed: at(5) })] }),
      node("b", { models: [model("m", { last_accessed: at(5) })] }),
      node("c", { models: [model("m", { last_accessed: at(5) })] }),
    );
    const lastUsedMs = new Map<string, number>();
    const counts = new Map<string, number>();
    const start = Date.parse(at(0));
    for (let i = 0; i < 300; i += 1) {
      const picked = pickReplica(replicasOf(snapshot), { lastUsedMs });
      const name = picked?.replica.node.name ?? "none";
      counts.set(name, (counts.get(name) ?? 0) + 1);
      // What cortex does after each pick: remember when it last used the replica.
      lastUsedMs.set(replicaKey(name, "m"), start + i);
    }
    expect(Object.fromEntries(counts)).toEqual({ a: 100, b: 100, c: 100 });
  });

  it("spreads concurrent picks by reservations alone", () => {
    const snapshot = fleet(
      node("a", { models: [model("m")] }),
      node("b", { models: [model("m")] }),
    );
    const reserved = new Map<string, number>();
    for (let i = 0; i < 6; i += 1) {
      const name = pickReplica(replicasOf(snapshot), { reserved })?.replica.node.name ?? "none";
      reserved.set(replicaKey(name, "m"), (reserved.get(replicaKey(name, "m")) ?? 0) + 1);
    }
    expect(reserved.get(replicaKey("a", "m"))).toBe(3);
    expect(reserved.get(replicaKey("b", "m"))).toBe(3);
  });
});
