import { describe, expect, it } from "vitest";
import { type Affinity, hash32, pickByAffinity, ringOf, ringWalk } from "./affinity.js";
import { fleet, model, node } from "./fleet.fixtures.js";
import { indexSnapshot, replicaKey } from "./fleet-index.js";
import type { LiveState } from "./types.js";

// Consistent hashing with bounded loads: table tests for the ring, the bound and the spill.

const replicasOf = (loads: Record<string, number>, maxConcurrency = 8) => {
  const snapshot = fleet(
    ...Object.entries(loads).map(([name, inFlight]) =>
      node(name, {
        models: [model("m", { in_flight: inFlight, max_concurrency: maxConcurrency })],
      }),
    ),
  );
  return indexSnapshot(snapshot).byModel.get("m")?.healthy.loaded ?? [];
};

const affinity = (key: string, fields: Partial<Affinity> = {}): Affinity => ({
  hash: hash32(key),
  loadFactor: 1.25,
  ...fields,
});

/** The replica a key's walk starts at: its own. */
const ownerOf = (key: string, nodes: string[]) =>
  ringWalk(ringOf(nodes.map((name) => replicaKey(name, "m"))), hash32(key))[0];

describe("the ring", () => {
  it("walks every replica once, starting at the key's owner", () => {
    const keys = ["a", "b", "c"].map((name) => replicaKey(name, "m"));
    const walk = ringWalk(ringOf(keys), hash32("conversation-1"));
    expect([...walk].sort()).toEqual([...keys].sort());
  });

  it("is the same whatever order the replicas come in", () => {
    const keys = ["a", "b", "c"].map((name) => replicaKey(name, "m"));
    expect(ringWalk(ringOf(keys), 12345)).toEqual(ringWalk(ringOf([...keys].reverse()), 12345));
  });

  it("spreads keys over the replicas", () => {
    const owners = new Map<string, number>();
    for (let i = 0; i < 3000; i += 1) {
      const owner = ownerOf(`k${i}`, ["a", "b", "c"]) ?? "";
      owners.set(owner, (owners.get(owner) ?? 0) + 1);
    }
    for (const count of owners.values()) expect(count).toBeGreaterThan(600);
  });

  it("moves only the keys of a replica that goes", () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
    let moved = 0;
    for (const key of keys) {
      const before = ownerOf(key, ["a", "b", "c"]);
      const after = ownerOf(key, ["a", "b"]);
      if (before !== replicaKey("c", "m") && before !== after) moved += 1;
    }
    expect(moved).toBe(0);
  });
});

interface Case {
  readonly name: string;
  readonly loads: Record<string, number>;
  readonly preferred?: string;
  readonly maxConcurrency?: number;
  /** The node expected, or null for "none has room". */
  readonly expected: { node: string; outcome: "hit" | "spill" } | null;
}

// "conv-7" starts at a fixed replica of a, b, c; the cases are written against that owner.
const own = (ownerOf("conv-7", ["a", "b", "c"]) ?? "").split("\u0000")[0] ?? "";
const others = ["a", "b", "c"].filter((name) => name !== own);
const [second = "", third = ""] = ringWalk(
  ringOf(["a", "b", "c"].map((name) => replicaKey(name, "m"))),
  hash32("conv-7"),
)
  .slice(1)
  .map((key) => key.split("\u0000")[0] ?? "");

const cases: Case[] = [
  {
    name: "an idle fleet: the key's own replica",
    loads: { a: 0, b: 0, c: 0 },
    expected: { node: own, outcome: "hit" },
  },
  {
    name: "its own replica busier than the others but within the bound: still its own",
    // total 3 (+1) over 3 replicas × 1.25 → bound 2: a load of 1 is within it.
    loads: { [own]: 1, [second]: 1, [third]: 1 },
    expected: { node: own, outcome: "hit" },
  },
  {
    name: "its own replica past the bound: spill to the next on the ring",
    loads: { [own]: 4, [second]: 0, [third]: 0 },
    expected: { node: second, outcome: "spill" },
  },
  {
    name: "the next one past the bound too: the one after",
    loads: { [own]: 6, [second]: 6, [third]: 0 },
    expected: { node: third, outcome: "spill" },
  },
  {
    name: "a remembered replica within the bound wins over the ring",
    loads: { a: 0, b: 0, c: 0 },
    preferred: others[0],
    expected: { node: others[0] ?? "", outcome: "hit" },
  },
  {
    name: "a remembered replica past the bound: the ring decides",
    loads: { [own]: 0, [second]: 0, [third]: 0, ...{ [others[0] ?? ""]: 5 } },
    preferred: others[0],
    expected: { node: own, outcome: "spill" },
  },
  {
    name: "never past max_concurrency, whatever the bound says",
    loads: { [own]: 2, [second]: 2, [third]: 2 },
    maxConcurrency: 2,
    expected: null,
  },
];

describe("pickByAffinity", () => {
  it.each(cases)("$name", ({ loads, preferred, maxConcurrency, expected }) => {
    const replicas = replicasOf(loads, maxConcurrency);
    const pick = pickByAffinity(
      replicas,
      affinity("conv-7", preferred === undefined ? {} : { preferred: replicaKey(preferred, "m") }),
      undefined,
    );
    expect(pick && { node: pick.replica.node.name, outcome: pick.outcome }).toEqual(expected);
  });

  it("counts cortex's reservations in the load", () => {
    const replicas = replicasOf({ a: 0, b: 0, c: 0 });
    const live: LiveState = { reserved: new Map([[replicaKey(own, "m"), 4]]) };
    expect(pickByAffinity(replicas, affinity("conv-7"), live)?.replica.node.name).toBe(second);
  });

  it("keeps the busiest replica within the bound under a skewed key mix", () => {
    const replicas = replicasOf({ a: 0, b: 0, c: 0 }, 64);
    const reserved = new Map<string, number>();
    const live: LiveState = { reserved };
    // 60 requests in flight at once, all of one conversation: they spread by the bound.
    for (let i = 0; i < 60; i += 1) {
      const pick = pickByAffinity(replicas, affinity("one-hot"), live);
      const key = pick?.replica.key ?? "";
      reserved.set(key, (reserved.get(key) ?? 0) + 1);
    }
    const loads = [...reserved.values()];
    const mean = 60 / 3;
    expect(Math.max(...loads)).toBeLessThanOrEqual(Math.ceil(1.25 * mean));
  });
});
