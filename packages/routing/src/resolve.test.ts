import { describe, expect, it } from "vitest";
import { at, catalogue, fleet, gpu, model, node, profile } from "./fleet.fixtures.js";
import { replicaKey } from "./fleet-index.js";
import { resolve } from "./resolve.js";
import type { Decision, LiveState } from "./types.js";

const qwen = profile("qwen", { aliases: ["default", "org/qwen"], vram_mb: 6000 });
const cat = catalogue(qwen, profile("pinned", { pinned_on: ["b"] }));

interface Case {
  readonly name: string;
  readonly snapshot: ReturnType<typeof fleet>;
  readonly request: { model: string; node?: string };
  readonly live?: LiveState;
  readonly expected: Partial<Decision> & { kind: Decision["kind"] };
}

const cases: Case[] = [
  {
    name: "routes a loaded model to its replica",
    snapshot: fleet(node("a", { models: [model("qwen")] })),
    request: { model: "qwen" },
    expected: { kind: "route", model: "qwen", node: "a", url: "http://a.lan:13131" },
  },
  {
    name: "resolves an alias to the canonical id before anything else",
    snapshot: fleet(node("a", { models: [model("qwen")] })),
    request: { model: "default" },
    expected: { kind: "route", model: "qwen", node: "a" },
  },
  {
    name: "accepts an alias shaped like an upstream name",
    snapshot: fleet(node("a", { models: [model("qwen")] })),
    request: { model: "org/qwen" },
    expected: { kind: "route", model: "qwen" },
  },
  {
    name: "routes a model that is not in the catalogue but loaded by hand",
    snapshot: fleet(node("a", { models: [model("manual")] })),
    request: { model: "manual" },
    expected: { kind: "route", model: "manual", node: "a" },
  },
  {
    name: "skips a loaded replica on an unhealthy node",
    snapshot: fleet(
      node("a", { healthy: false, models: [model("qwen")] }),
      node("b", { models: [model("qwen", { status: "unloaded" })] }),
    ),
    request: { model: "qwen" },
    expected: { kind: "lazy", node: "b", reason: "unloaded" },
  },
  {
    name: "reports saturation when every replica is at max_concurrency",
    snapshot: fleet(
      node("a", { models: [model("qwen", { in_flight: 4 })] }),
      node("b", { models: [model("qwen", { in_flight: 2, queued: 2 })] }),
    ),
    request: { model: "qwen" },
    expected: { kind: "saturated", model: "qwen", replicas: 2 },
  },
  {
    name: "counts cortex's reservations towards saturation",
    snapshot: fleet(node("a", { models: [model("qwen", { in_flight: 1 })] })),
    request: { model: "qwen" },
    live: { reserved: new Map([[replicaKey("a", "qwen"), 4]]) },
    expected: { kind: "saturated" },
  },
  {
    name: "does not count a request twice: the neuron's in_flight already includes cortex's",
    snapshot: fleet(node("a", { models: [model("qwen", { in_flight: 3 })] })),
    request: { model: "qwen" },
    live: {
      reserved: new Map([[replicaKey("a", "qwen"), 3]]),
      reservedAtPoll: new Map([[replicaKey("a", "qwen"), 3]]),
    },
    expected: { kind: "route", node: "a" },
  },
  {
    name: "frees the slots of cortex's finished requests before the next poll",
    snapshot: fleet(node("a", { models: [model("qwen", { in_flight: 4 })] })),
    request: { model: "qwen" },
    live: { reserved: new Map(), reservedAtPoll: new Map([[replicaKey("a", "qwen"), 4]]) },
    expected: { kind: "route", node: "a" },
  },
  {
    name: "adds load from clients calling the neuron directly to cortex's own",
    snapshot: fleet(node("a", { models: [model("qwen", { in_flight: 3 })] })),
    request: { model: "qwen" },
    live: { reserved: new Map([[replicaKey("a", "qwen"), 1]]) },
    expected: { kind: "saturated" },
  },
  {
    name: "waits on a load already under way instead of placing a second copy",
    snapshot: fleet(node("a", { models: [model("qwen", { status: "loading" })] }), node("b")),
    request: { model: "qwen" },
    expected: { kind: "lazy", node: "a", reason: "loading" },
  },
  {
    name: "holds while recovering, even when another node could take a cold load",
    snapshot: fleet(node("a", { models: [model("qwen", { status: "recovering" })] }), node("b")),
    request: { model: "qwen" },
    expected: { kind: "hold", node: "a", retry_after_s: 5 },
  },
  {
    name: "prefers a loaded replica over a recovering one",
    snapshot: fleet(
      node("a", { models: [model("qwen", { status: "recovering" })] }),
      node("b", { models: [model("qwen")] }),
    ),
    request: { model: "qwen" },
    expected: { kind: "route", node: "b" },
  },
  {
    name: "ignores a recovering replica on an unhealthy node and cold-loads elsewhere",
    snapshot: fleet(
      node("a", { healthy: false, models: [model("qwen", { status: "recovering" })] }),
      node("b"),
    ),
    request: { model: "qwen" },
    expected: { kind: "load", model: "qwen" },
  },
  {
    name: "routes to an unloaded copy for a lazy reload rather than cold-loading",
    snapshot: fleet(node("a", { models: [model("qwen", { status: "unloaded" })] }), node("b")),
    request: { model: "qwen" },
    expected: { kind: "lazy", node: "a", reason: "unloaded", url: "http://a.lan:13131" },
  },
  {
    name: "picks the unloaded copy that fits in free memory",
    snapshot: fleet(
      node("a", {
        models: [model("qwen", { status: "unloaded" }), model("big", { vram_mb: 22_000 })],
      }),
      node("b", { models: [model("qwen", { status: "unloaded" })] }),
    ),
    request: { model: "qwen" },
    expected: { kind: "lazy", node: "b" },
  },
  {
    name: "cold-loads a catalogue model resident nowhere",
    snapshot: fleet(node("a")),
    request: { model: "default" },
    expected: { kind: "load", model: "qwen" },
  },
  {
    name: "cold-loads a catalogue model that failed everywhere",
    snapshot: fleet(node("a", { models: [model("qwen", { status: "failed", error: "oom" })] })),
    request: { model: "qwen" },
    expected: { kind: "load", model: "qwen" },
  },
  {
    name: "404s a model that is neither in the catalogue nor on any node",
    snapshot: fleet(node("a")),
    request: { model: "gpt-9" },
    expected: { kind: "reject", code: "model_not_found", retry_after_s: null },
  },
  {
    name: "404s an unknown model even when no node is healthy",
    snapshot: fleet(node("a", { healthy: false })),
    request: { model: "gpt-9" },
    expected: { kind: "reject", code: "model_not_found" },
  },
  {
    name: "503s a catalogue model when no node is healthy",
    snapshot: fleet(node("a", { healthy: false }), node("b", { healthy: false })),
    request: { model: "qwen" },
    expected: { kind: "reject", code: "service_unavailable", retry_after_s: 5 },
  },
  {
    name: "503s (retryable) a hand-loaded model whose only node is unhealthy",
    snapshot: fleet(node("a", { healthy: false, models: [model("manual")] })),
    request: { model: "manual" },
    expected: { kind: "reject", code: "service_unavailable", retry_after_s: 5 },
  },
  {
    name: "503s (not retryable) a hand-loaded model that failed",
    snapshot: fleet(
      node("a", { models: [model("manual", { status: "failed", error: "bad file" })] }),
    ),
    request: { model: "manual" },
    expected: { kind: "reject", code: "service_unavailable", retry_after_s: null },
  },
  {
    name: "tells an unhealthy feasible node apart from no feasible node: unhealthy",
    snapshot: fleet(node("a"), node("b", { healthy: false })),
    request: { model: "pinned" },
    expected: { kind: "reject", code: "service_unavailable", retry_after_s: 5 },
  },
  {
    name: "tells an unhealthy feasible node apart from no feasible node: none",
    snapshot: fleet(node("a"), node("c")),
    request: { model: "pinned" },
    expected: { kind: "reject", code: "no_feasible_node", retry_after_s: null },
  },
  {
    name: "restricts every branch to the named node",
    snapshot: fleet(node("a", { models: [model("qwen")] }), node("b")),
    request: { model: "qwen", node: "b" },
    expected: { kind: "load", model: "qwen" },
  },
  {
    name: "rejects a named node that is not in the fleet",
    snapshot: fleet(node("a")),
    request: { model: "qwen", node: "zzz" },
    expected: { kind: "reject", code: "not_found" },
  },
];

describe("resolve", () => {
  it.each(cases)("$name", ({ snapshot, request, live, expected }) => {
    expect(resolve(snapshot, cat, request, live)).toMatchObject(expected);
  });

  it("plans the cold load on the named node only", () => {
    const decision = resolve(fleet(node("a"), node("b")), cat, { model: "qwen", node: "b" });
    expect(decision).toMatchObject({ kind: "load", plan: { node: "b" } });
  });

  it("never routes to a node that was not asked for, even when it is the only one with the model", () => {
    const decision = resolve(fleet(node("a", { models: [model("manual")] }), node("b")), cat, {
      model: "manual",
      node: "b",
    });
    expect(decision).toMatchObject({ kind: "reject", code: "model_not_found" });
  });

  it("gives the same decision for the same inputs", () => {
    const snapshot = fleet(
      node("a", { models: [model("qwen", { last_accessed: at(5) })] }),
      node("b", { models: [model("qwen", { last_accessed: at(5) })] }),
      node("c", { devices: [gpu(0, 24_000), gpu(1, 24_000)] }),
    );
    const first = resolve(snapshot, cat, { model: "qwen" });
    for (let i = 0; i < 10; i += 1)
      expect(resolve(snapshot, cat, { model: "qwen" })).toEqual(first);
  });
});
