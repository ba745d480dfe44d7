import { describe, expect, it } from "vitest";
import { catalogue, fleet, gpu, model, node, profile } from "./fleet.fixtures.js";
import { replicaKey } from "./fleet-index.js";
import { resolve } from "./resolve.js";
import type { Decision, LiveState } from "./types.js";

// Resolve under contention (issue 15): a swap instead of no_capacity when only busy models hold
// the memory, draining replicas, and scale-out of a saturated model.

const big = (id: string, fields = {}) => profile(id, { vram_mb: 16_000, ...fields });
const a = big("a");
const b = big("b");
const c = big("c");
const vip = big("vip", { residency_priority: 10 });
const wide = profile("wide", { vram_mb: 16_000, max_concurrency: 2, max_replicas: 2 });
const cat = catalogue(a, b, c, vip, wide);

/** A 16 GB resident on device 0 of a 24 GB node. */
const held = (id: string, fields = {}) => model(id, { vram_mb: 16_000, devices: [0], ...fields });

const reserved = (node: string, id: string, count: number): LiveState => ({
  reserved: new Map([[replicaKey(node, id), count]]),
});

interface Case {
  readonly name: string;
  readonly snapshot: ReturnType<typeof fleet>;
  readonly request: { model: string; node?: string; turn?: boolean };
  readonly live?: LiveState;
  readonly expected: { readonly kind: Decision["kind"] } & Record<string, unknown>;
}

const cases: Case[] = [
  {
    name: "an idle resident is evicted at once, as before",
    snapshot: fleet(node("n", { models: [held("a")] })),
    request: { model: "b" },
    expected: { kind: "load", model: "b" },
  },
  {
    name: "a busy resident of equal priority: wait for a swap on its node, not no_capacity",
    snapshot: fleet(node("n", { models: [held("a", { in_flight: 1 })] })),
    request: { model: "b" },
    expected: { kind: "swap", model: "b", node: "n", url: "http://n.lan:13131", blockers: ["a"] },
  },
  {
    name: "busy by cortex's own reservations counts too",
    snapshot: fleet(node("n", { models: [held("a")] })),
    request: { model: "b" },
    live: reserved("n", "a", 1),
    expected: { kind: "swap", blockers: ["a"] },
  },
  {
    name: "a resident still loading is waited out like a busy one",
    snapshot: fleet(node("n", { models: [held("a", { status: "loading" })] })),
    request: { model: "b" },
    expected: { kind: "swap", blockers: ["a"] },
  },
  {
    name: "a higher-priority resident is never waited out: no_capacity stays",
    snapshot: fleet(node("n", { models: [held("vip", { in_flight: 1 })] })),
    request: { model: "b" },
    expected: { kind: "reject", code: "no_capacity" },
  },
  {
    name: "a model that fits no node at all is still no_feasible_node",
    snapshot: fleet(node("n", { devices: [gpu(0, 8_000)] })),
    request: { model: "b" },
    expected: { kind: "reject", code: "no_feasible_node" },
  },
  {
    name: "the swap waits on the node with the least work to wait out",
    snapshot: fleet(
      node("m", { models: [held("a", { in_flight: 3 })] }),
      node("n", { models: [held("c", { in_flight: 1 })] }),
    ),
    request: { model: "b" },
    expected: { kind: "swap", node: "n", blockers: ["c"] },
  },
  {
    name: "of residents that would each free enough, the one with least work is waited out",
    snapshot: fleet(
      node("n", {
        devices: [gpu(0, 40_000)],
        models: [held("a", { in_flight: 2 }), held("c", { status: "loading" })],
      }),
    ),
    request: { model: "b" },
    expected: { kind: "swap", blockers: ["c"] },
  },
  {
    name: "a draining replica takes no new request: wait for the model's next turn",
    snapshot: fleet(node("n", { models: [held("a", { in_flight: 1 })] })),
    request: { model: "a" },
    live: { draining: new Set([replicaKey("n", "a")]) },
    expected: { kind: "draining", model: "a" },
  },
  {
    name: "a request holding its turn is served while the replica drains",
    snapshot: fleet(node("n", { models: [held("a", { in_flight: 1 })] })),
    request: { model: "a", turn: true },
    live: { draining: new Set([replicaKey("n", "a")]) },
    expected: { kind: "route", model: "a", node: "n" },
  },
  {
    name: "a draining replica's load is not joined by new requests either",
    snapshot: fleet(node("n", { models: [held("a", { status: "loading" })] })),
    request: { model: "a" },
    live: { draining: new Set([replicaKey("n", "a")]) },
    expected: { kind: "draining", model: "a" },
  },
  {
    name: "another replica that is not draining still serves",
    snapshot: fleet(
      node("m", { models: [held("a", { in_flight: 1 })] }),
      node("n", { models: [held("a", { in_flight: 1 })] }),
    ),
    request: { model: "a" },
    live: { draining: new Set([replicaKey("n", "a")]) },
    expected: { kind: "route", node: "m" },
  },
  {
    name: "saturated with max_replicas 1: wait, no scale-out",
    snapshot: fleet(node("m", { models: [held("a", { in_flight: 4 })] }), node("n")),
    request: { model: "a" },
    expected: { kind: "saturated", model: "a", replicas: 1 },
  },
  {
    name: "saturated with room for one more replica: scale out to the free node",
    snapshot: fleet(
      node("m", { models: [held("wide", { in_flight: 2, max_concurrency: 2 })] }),
      node("n"),
    ),
    request: { model: "wide" },
    expected: {
      kind: "saturated",
      model: "wide",
      scaleOut: {
        profile: wide,
        plan: { node: "n", url: "http://n.lan:13131", devices: [0], tensor_parallel: 1, evict: [] },
      },
    },
  },
  {
    name: "a scale-out may evict an idle model, as any placement",
    snapshot: fleet(
      node("m", { models: [held("wide", { in_flight: 2, max_concurrency: 2 })] }),
      node("n", { models: [held("c")] }),
    ),
    request: { model: "wide" },
    expected: {
      kind: "saturated",
      scaleOut: { profile: wide, plan: { node: "n", evict: [{ node: "n", model: "c" }] } },
    },
  },
];

describe("resolve under contention", () => {
  it.each(cases)("$name", ({ snapshot, request, live, expected }) => {
    expect(resolve(snapshot, cat, request, live)).toMatchObject(expected);
  });

  it("never scales out onto a busy model's memory", () => {
    const decision = resolve(
      fleet(
        node("m", { models: [held("wide", { in_flight: 2, max_concurrency: 2 })] }),
        node("n", { models: [held("c", { in_flight: 1 })] }),
      ),
      cat,
      { model: "wide" },
    );
    expect(decision).toEqual({ kind: "saturated", model: "wide", replicas: 1 });
  });

  it("never scales out past max_replicas (a replica loading counts)", () => {
    const decision = resolve(
      fleet(
        node("m", { models: [held("wide", { in_flight: 2, max_concurrency: 2 })] }),
        node("n", { models: [held("wide", { status: "loading" })] }),
        node("o"),
      ),
      cat,
      { model: "wide" },
    );
    // It waits for whichever replica frees first: the busy one or the one loading.
    expect(decision).toEqual({ kind: "saturated", model: "wide", replicas: 1 });
  });

  it("scales out onto a node where the model was idle-unloaded, loading it there again", () => {
    const decision = resolve(
      fleet(
        node("m", { models: [held("wide", { in_flight: 2, max_concurrency: 2 })] }),
        node("n", { models: [held("wide", { status: "unloaded" })] }),
      ),
      cat,
      { model: "wide" },
    );
    expect(decision).toMatchObject({ kind: "saturated", scaleOut: { plan: { node: "n" } } });
  });

  it("never scales out a second copy onto a node that has one", () => {
    const decision = resolve(
      fleet(
        node("m", {
          devices: [gpu(0, 80_000)],
          models: [held("wide", { in_flight: 2, max_concurrency: 2 })],
        }),
      ),
      cat,
      { model: "wide" },
    );
    expect(decision).toEqual({ kind: "saturated", model: "wide", replicas: 1 });
  });
});
