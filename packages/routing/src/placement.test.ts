import { describe, expect, it } from "vitest";
import { at, catalogue, fleet, gpu, model, node, profile } from "./fleet.fixtures.js";
import { indexSnapshot, replicaKey } from "./fleet-index.js";
import { evictionCandidates, planPlacement } from "./placement.js";
import type { LiveState, LoadPlan, Reject } from "./types.js";

type Profile = ReturnType<typeof profile>;

const plan = (
  snapshot: ReturnType<typeof fleet>,
  incoming: Profile,
  others: Profile[] = [],
  live?: LiveState,
  onlyNode?: string,
): LoadPlan | Reject =>
  planPlacement(indexSnapshot(snapshot), incoming, catalogue(incoming, ...others), live, onlyNode);

const ten = profile("ten", { vram_mb: 10_000, residency_priority: 50 });

describe("placement order", () => {
  it.each([
    {
      rule: "pinned nodes only, even when another node has more room",
      incoming: profile("p", { vram_mb: 10_000, pinned_on: ["b"] }),
      snapshot: fleet(
        node("a", { devices: [gpu(0, 80_000)] }),
        node("b", { devices: [gpu(0, 16_000)] }),
      ),
      node: "b",
    },
    {
      rule: "fits in free memory beats fits after eviction, whatever the sizes",
      incoming: ten,
      snapshot: fleet(
        node("a", { devices: [gpu(0, 48_000)], models: [model("idle", { vram_mb: 40_000 })] }),
        node("b", { devices: [gpu(0, 16_000)] }),
      ),
      node: "b",
    },
    {
      rule: "then the most free memory",
      incoming: ten,
      snapshot: fleet(
        node("a", { devices: [gpu(0, 16_000)] }),
        node("b", { devices: [gpu(0, 20_000)] }),
      ),
      node: "b",
    },
    {
      rule: "then the name",
      incoming: ten,
      snapshot: fleet(
        node("b", { devices: [gpu(0, 16_000)] }),
        node("a", { devices: [gpu(0, 16_000)] }),
      ),
      node: "a",
    },
    {
      rule: "a node without the model's harness is not feasible",
      incoming: profile("v", { harness: "vllm", vram_mb: 1000 }),
      snapshot: fleet(
        node("a", { harnesses: ["llamacpp"] }),
        node("b", { devices: [gpu(0, 8000)] }),
      ),
      node: "b",
    },
    {
      rule: "unhealthy nodes are skipped",
      incoming: ten,
      snapshot: fleet(node("a", { healthy: false, devices: [gpu(0, 80_000)] }), node("b")),
      node: "b",
    },
  ])("$rule", ({ incoming, snapshot, node: expected }) => {
    expect(plan(snapshot, incoming)).toMatchObject({ node: expected });
  });

  it("places a CPU model on a host without GPUs", () => {
    const cpu = profile("tiny", { runs_on: "cpu", vram_mb: 0 });
    expect(plan(fleet(node("laptop", { devices: [] })), cpu)).toEqual({
      node: "laptop",
      url: "http://laptop.lan:13131",
      devices: [],
      tensor_parallel: 1,
      evict: [],
    });
  });

  it("a GPU model is not feasible on a host without GPUs", () => {
    expect(plan(fleet(node("laptop", { devices: [] })), ten)).toMatchObject({
      kind: "reject",
      code: "no_feasible_node",
    });
  });
});

describe("multi-device models", () => {
  const big = profile("big", { vram_mb: 36_000, min_devices: 2, min_device_vram_mb: 24_000 });

  it("spreads an even share over the requested number of devices", () => {
    const snapshot = fleet(
      node("a", { devices: [gpu(0, 24_000, 20_000), gpu(1, 24_000, 20_000)] }),
    );
    expect(plan(snapshot, big)).toMatchObject({ devices: [0, 1], tensor_parallel: 2, evict: [] });
  });

  it("never compares one device's free memory with the multi-device total", () => {
    // 40 + 5 GB free is more than 36 GB in total, but device 1 cannot take its 18 GB share.
    const snapshot = fleet(node("a", { devices: [gpu(0, 48_000, 40_000), gpu(1, 48_000, 5_000)] }));
    expect(plan(snapshot, big)).toMatchObject({ kind: "reject", code: "no_capacity" });
  });

  it("needs min_devices devices, however large a single device is", () => {
    const snapshot = fleet(node("a", { devices: [gpu(0, 80_000)] }));
    expect(plan(snapshot, big)).toMatchObject({ kind: "reject", code: "no_feasible_node" });
  });

  it("uses only devices whose total memory meets min_device_vram_mb", () => {
    const snapshot = fleet(
      node("a", { devices: [gpu(0, 16_000), gpu(1, 24_000), gpu(2, 16_000), gpu(3, 24_000)] }),
    );
    expect(plan(snapshot, big)).toMatchObject({ devices: [1, 3] });
  });

  it("picks the devices with most free memory", () => {
    const snapshot = fleet(
      node("a", {
        devices: [gpu(0, 24_000, 19_000), gpu(1, 24_000, 24_000), gpu(2, 24_000, 22_000)],
      }),
    );
    expect(plan(snapshot, big)).toMatchObject({ devices: [1, 2] });
  });
});

describe("evictions", () => {
  const gpu24 = [gpu(0, 24_000)];
  const idle = (id: string, secondsAgo: number, fields = {}) =>
    model(id, { vram_mb: 8000, last_accessed: at(secondsAgo), ...fields });

  it("evicts idle residents least recently used first, only as many as needed", () => {
    const snapshot = fleet(
      node("a", { devices: gpu24, models: [idle("new", 10), idle("old", 900), idle("mid", 300)] }),
    );
    expect(plan(snapshot, ten)).toMatchObject({
      node: "a",
      evict: [
        { node: "a", model: "old" },
        { node: "a", model: "mid" },
      ],
    });
  });

  it.each([
    ["requests in flight", { in_flight: 1 }],
    ["requests queued", { queued: 1 }],
    ["still loading", { status: "loading" as const }],
    ["recovering", { status: "recovering" as const }],
  ])("never evicts a resident with %s", (_why, fields) => {
    const snapshot = fleet(
      node("a", {
        devices: gpu24,
        models: [idle("busy", 900, fields), idle("x", 300), idle("y", 10)],
      }),
    );
    const result = plan(snapshot, ten);
    expect(result).toMatchObject({ evict: [{ model: "x" }, { model: "y" }] });
  });

  it("never evicts a resident cortex holds a reservation on", () => {
    const snapshot = fleet(
      node("a", { devices: gpu24, models: [idle("r", 900), idle("x", 300), idle("y", 10)] }),
    );
    const live: LiveState = { reserved: new Map([[replicaKey("a", "r"), 1]]) };
    expect(plan(snapshot, ten, [], live)).toMatchObject({
      evict: [{ model: "x" }, { model: "y" }],
    });
  });

  it("may evict a resident whose reported requests were cortex's own and have finished", () => {
    const snapshot = fleet(
      node("a", {
        devices: gpu24,
        models: [idle("r", 900, { in_flight: 1 }), idle("x", 300), idle("y", 10)],
      }),
    );
    const finished: LiveState = { reservedAtPoll: new Map([[replicaKey("a", "r"), 1]]) };
    expect(plan(snapshot, ten, [], finished)).toMatchObject({
      evict: [{ model: "r" }, { model: "x" }],
    });
    // The same report with no cortex request behind it: a direct client is using r.
    expect(plan(snapshot, ten, [], undefined)).toMatchObject({
      evict: [{ model: "x" }, { model: "y" }],
    });
  });

  it("evicts equal priority but never higher priority", () => {
    const same = profile("same", { residency_priority: 50 });
    const higher = profile("higher", { residency_priority: 51 });
    const snapshot = fleet(
      node("a", {
        devices: gpu24,
        models: [idle("higher", 900), idle("same", 300), idle("y", 10)],
      }),
    );
    expect(plan(snapshot, ten, [same, higher])).toMatchObject({
      evict: [{ model: "same" }, { model: "y" }],
    });
  });

  it("counts models loaded by hand (not in the catalogue) as lowest priority", () => {
    const lowest = profile("low", { vram_mb: 10_000, residency_priority: 0 });
    const snapshot = fleet(
      node("a", { devices: gpu24, models: [idle("hand", 900), idle("x", 10), idle("y", 5)] }),
    );
    expect(plan(snapshot, lowest)).toMatchObject({ evict: [{ model: "hand" }, { model: "x" }] });
  });

  it("never offers the incoming model itself for eviction", () => {
    const snapshot = fleet(
      node("a", { devices: gpu24, models: [idle("ten", 900), idle("x", 300)] }),
    );
    const index = indexSnapshot(snapshot);
    const firstNode = snapshot.nodes[0];
    if (!firstNode) throw new Error("fixture");
    expect(evictionCandidates(ten, firstNode, catalogue(ten), undefined).map((m) => m.id)).toEqual([
      "x",
    ]);
    expect(planPlacement(index, ten, catalogue(ten), undefined)).toMatchObject({
      evict: [{ model: "x" }],
    });
  });

  it("drops evictions that freed nothing on the devices finally chosen", () => {
    const two = profile("two", {
      vram_mb: 24_000,
      min_devices: 2,
      min_device_vram_mb: 24_000,
      residency_priority: 50,
    });
    const snapshot = fleet(
      node("a", {
        devices: [gpu(0, 24_000), gpu(1, 24_000), gpu(2, 24_000)],
        models: [
          idle("x", 900, { vram_mb: 5000, devices: [0] }),
          model("w", { vram_mb: 15_000, devices: [0], in_flight: 1 }),
          idle("y", 300, { vram_mb: 20_000, devices: [1] }),
          idle("z", 10, { vram_mb: 10_000, devices: [2] }),
        ],
      }),
    );
    expect(plan(snapshot, two)).toMatchObject({ devices: [1, 2], evict: [{ model: "y" }] });
  });

  it("frees a multi-device resident's share on each of its devices", () => {
    const snapshot = fleet(
      node("a", {
        devices: [gpu(0, 24_000), gpu(1, 24_000)],
        models: [idle("pair", 900, { vram_mb: 40_000, devices: [0, 1] })],
      }),
    );
    const wide = profile("wide", { vram_mb: 30_000, min_devices: 2, residency_priority: 50 });
    expect(plan(snapshot, wide)).toMatchObject({ devices: [0, 1], evict: [{ model: "pair" }] });
  });

  it("answers no_capacity when busy models hold the memory", () => {
    const snapshot = fleet(
      node("a", { devices: gpu24, models: [model("busy", { vram_mb: 20_000, in_flight: 1 })] }),
    );
    expect(plan(snapshot, ten)).toMatchObject({
      kind: "reject",
      code: "no_capacity",
      retry_after_s: 5,
    });
  });
});

describe("free memory accounting", () => {
  it("counts a load that has not allocated yet against its devices", () => {
    const snapshot = fleet(
      node("a", {
        devices: [gpu(0, 24_000)],
        models: [model("starting", { status: "loading", vram_mb: 20_000 })],
      }),
      node("b", { devices: [gpu(0, 12_000)] }),
    );
    expect(plan(snapshot, ten)).toMatchObject({ node: "b", evict: [] });
  });

  it("trusts a lower reported figure when something else uses the GPU", () => {
    const snapshot = fleet(
      node("a", { devices: [gpu(0, 24_000, 5_000)] }),
      node("b", { devices: [gpu(0, 12_000)] }),
    );
    expect(plan(snapshot, ten)).toMatchObject({ node: "b" });
  });
});

describe("rejections", () => {
  it("names the fleet as empty", () => {
    expect(plan(fleet(), ten)).toMatchObject({
      kind: "reject",
      code: "no_feasible_node",
      message: expect.stringContaining("no nodes"),
    });
  });

  it("says why each node is infeasible, and truncates long lists", () => {
    const nodes = Array.from({ length: 12 }, (_, i) => node(`n${i}`, { devices: [gpu(0, 4000)] }));
    const result = plan(fleet(...nodes), ten) as Reject;
    expect(result.code).toBe("no_feasible_node");
    expect(result.message).toContain("n0: needs 1 device(s)");
    expect(result.message).toContain("and 7 more");
  });

  it("restricted to a node that cannot run it, says so", () => {
    const result = plan(
      fleet(node("a"), node("small", { devices: [gpu(0, 4000)] })),
      ten,
      [],
      undefined,
      "small",
    );
    expect(result).toMatchObject({ kind: "reject", code: "no_feasible_node" });
  });
});
