import type { NodeDrain } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { catalogue, fleet, gpu, model, node, profile } from "./fleet.fixtures.js";
import { indexSnapshot } from "./fleet-index.js";
import { formatLabels, formatSelector, selectorMatches, selectorMismatch } from "./node-fit.js";
import { planPlacement } from "./placement.js";
import { resolve } from "./resolve.js";
import { planSwap } from "./swap-placement.js";
import type { Decision, LiveState } from "./types.js";

// The operator's two node properties: labels against a model's `node_selector` (feasibility),
// and a node's drain (no new placements or requests there).

const drains = (entries: Record<string, NodeDrain>): LiveState => ({
  nodeDrains: new Map(Object.entries(entries)),
});

const a100 = profile("big", { vram_mb: 10_000, node_selector: { gpu: "a100" } });
const plain = profile("plain", { vram_mb: 10_000 });
const cat = catalogue(a100, plain);

describe("selectorMatches", () => {
  it.each([
    ["no selector matches any node", undefined, undefined, true],
    ["an empty selector matches a node without labels", {}, undefined, true],
    ["every pair held", { gpu: "a100" }, { gpu: "a100", zone: "eu" }, true],
    ["two pairs held", { gpu: "a100", zone: "eu" }, { gpu: "a100", zone: "eu" }, true],
    ["a value differs", { gpu: "a100" }, { gpu: "h100" }, false],
    ["one of two pairs missing", { gpu: "a100", zone: "eu" }, { gpu: "a100" }, false],
    ["unknown labels are none", { gpu: "a100" }, undefined, false],
    ["no own property from the prototype", { constructor: "x" }, {}, false],
    ["a label named like a prototype member", { constructor: "x" }, { constructor: "x" }, true],
  ] as const)("%s", (_, selector, labels, expected) => {
    const model = selector === undefined ? {} : { node_selector: { ...selector } };
    const target = labels === undefined ? {} : { labels: { ...labels } };
    expect(selectorMatches(model, target)).toBe(expected);
  });

  it("says why a node is out, in the catalogue's words", () => {
    expect(selectorMismatch(a100, { labels: { gpu: "h100", zone: "eu" } })).toBe(
      "labels (gpu=h100, zone=eu) do not match node_selector {gpu: a100}",
    );
    expect(selectorMismatch(a100, {})).toBe(
      "labels (no labels) do not match node_selector {gpu: a100}",
    );
    expect(formatSelector({ gpu: "a100", zone: "eu" })).toBe("{gpu: a100, zone: eu}");
    expect(formatLabels({})).toBe("no labels");
  });
});

describe("node_selector in placement", () => {
  it("places only on a node whose labels match, even with more room elsewhere", () => {
    const snapshot = fleet(
      node("a", { devices: [gpu(0, 80_000)], labels: { gpu: "h100" } }),
      node("b", { devices: [gpu(0, 24_000)], labels: { gpu: "a100", zone: "eu" } }),
    );
    expect(planPlacement(indexSnapshot(snapshot), a100, cat, undefined)).toMatchObject({
      node: "b",
    });
  });

  it("refuses naming the selector and every node's labels when none matches", () => {
    const snapshot = fleet(node("a", { labels: { gpu: "h100" } }), node("b"));
    expect(planPlacement(indexSnapshot(snapshot), a100, cat, undefined)).toEqual({
      kind: "reject",
      code: "no_feasible_node",
      message:
        'no node can run model "big": node_selector {gpu: a100} matches no node (a: gpu=h100; b: no labels)',
      retry_after_s: null,
    });
  });

  it("lists the selector beside other reasons when nodes fail for both", () => {
    const snapshot = fleet(
      node("a", { labels: { gpu: "a100" }, harnesses: ["vllm"] }),
      node("b", { labels: { gpu: "h100" } }),
    );
    const decision = planPlacement(indexSnapshot(snapshot), a100, cat, undefined);
    expect(decision).toMatchObject({ code: "no_feasible_node" });
    expect("message" in decision && decision.message).toBe(
      'no node can run model "big": a: node has no "llamacpp" harness; b: labels (gpu=h100) do not match node_selector {gpu: a100}',
    );
  });

  it("a matching node that is down is unavailable, not infeasible", () => {
    const snapshot = fleet(
      node("a", { labels: { gpu: "a100" }, healthy: false }),
      node("b", { labels: { gpu: "h100" } }),
    );
    expect(planPlacement(indexSnapshot(snapshot), a100, cat, undefined)).toMatchObject({
      code: "service_unavailable",
      message: 'every node that can run model "big" is unhealthy: a',
    });
  });

  it("swaps only on a node whose labels match", () => {
    const busy = model("busy", { vram_mb: 20_000, in_flight: 1 });
    const snapshot = fleet(
      node("a", { labels: { gpu: "h100" }, models: [busy] }),
      node("b", { labels: { gpu: "a100" }, models: [{ ...busy }] }),
    );
    expect(planSwap(indexSnapshot(snapshot), a100, cat, undefined)).toMatchObject({ node: "b" });
    const noMatch = fleet(node("a", { labels: { gpu: "h100" }, models: [busy] }));
    expect(planSwap(indexSnapshot(noMatch), a100, cat, undefined)).toBeNull();
  });

  it("resolve cold-loads on the matching node and refuses clearly when none matches", () => {
    const snapshot = fleet(
      node("a", { labels: { gpu: "h100" } }),
      node("b", { labels: { gpu: "a100" } }),
    );
    expect(resolve(snapshot, cat, { model: "big" })).toMatchObject({
      kind: "load",
      plan: { node: "b" },
    });
    const none = fleet(node("a", { labels: { gpu: "h100" } }));
    expect(resolve(none, cat, { model: "big" })).toMatchObject({
      kind: "reject",
      code: "no_feasible_node",
      message: expect.stringContaining("node_selector {gpu: a100} matches no node (a: gpu=h100)"),
    });
  });
});

interface DrainCase {
  readonly name: string;
  readonly snapshot: ReturnType<typeof fleet>;
  readonly request: { model: string; node?: string };
  readonly live: LiveState;
  readonly expected: Partial<Decision> & { kind: Decision["kind"] };
}

const drainCases: DrainCase[] = [
  {
    name: "a loaded replica on a draining node takes no new request: the other one does",
    snapshot: fleet(
      node("a", { models: [model("plain")] }),
      node("b", { models: [model("plain", { in_flight: 3 })] }),
    ),
    request: { model: "plain" },
    live: drains({ a: "draining" }),
    expected: { kind: "route", node: "b" },
  },
  {
    name: "a model only on a draining node is cold-loaded elsewhere",
    snapshot: fleet(node("a", { models: [model("plain")] }), node("b")),
    request: { model: "plain" },
    live: drains({ a: "draining" }),
    expected: { kind: "load", model: "plain", plan: expect.objectContaining({ node: "b" }) },
  },
  {
    name: "a drained node is never placed on, even with the most room",
    snapshot: fleet(
      node("a", { devices: [gpu(0, 80_000)] }),
      node("b", { devices: [gpu(0, 16_000)] }),
    ),
    request: { model: "plain" },
    live: drains({ a: "drained" }),
    expected: { kind: "load", plan: expect.objectContaining({ node: "b" }) },
  },
  {
    name: "a model only on draining nodes with nowhere else to go is refused naming the drain",
    snapshot: fleet(node("a", { models: [model("plain")] })),
    request: { model: "plain" },
    live: drains({ a: "draining" }),
    expected: {
      kind: "reject",
      code: "service_unavailable",
      message: 'every node that can run model "plain" is draining: a (draining)',
      retry_after_s: 5,
    },
  },
  {
    name: "drained and unhealthy nodes are told apart",
    snapshot: fleet(node("a"), node("b", { healthy: false })),
    request: { model: "plain" },
    live: drains({ a: "drained" }),
    expected: {
      kind: "reject",
      code: "service_unavailable",
      message:
        'every node that can run model "plain" is draining or unhealthy: a (drained); b (unhealthy)',
    },
  },
  {
    name: "a model loaded by hand only on a draining node is unavailable, naming the drain",
    snapshot: fleet(node("a", { models: [model("manual")] })),
    request: { model: "manual" },
    live: drains({ a: "draining" }),
    expected: {
      kind: "reject",
      code: "service_unavailable",
      message: 'model "manual" is only on draining node(s): a (draining)',
    },
  },
  {
    name: "an idle-unloaded copy on a draining node is not woken",
    snapshot: fleet(node("a", { models: [model("plain", { status: "unloaded" })] }), node("b")),
    request: { model: "plain" },
    live: drains({ a: "draining" }),
    expected: { kind: "load", plan: expect.objectContaining({ node: "b" }) },
  },
  {
    name: "a swap never waits on a draining node",
    snapshot: fleet(
      node("a", { models: [model("busy", { vram_mb: 20_000, in_flight: 1 })] }),
      node("b", { models: [model("busy", { vram_mb: 20_000, in_flight: 1 })] }),
    ),
    request: { model: "plain" },
    live: drains({ a: "draining" }),
    expected: { kind: "swap", node: "b" },
  },
  {
    name: "an operator's load on a draining node is refused",
    snapshot: fleet(node("a"), node("b")),
    request: { model: "plain", node: "a" },
    live: drains({ a: "draining" }),
    expected: { kind: "reject", code: "service_unavailable" },
  },
  {
    name: "a saturated model scales out past its replica on a draining node",
    snapshot: fleet(
      node("a", { models: [model("scaled", { in_flight: 4 })] }),
      node("b", { models: [model("scaled", { in_flight: 4 })] }),
      node("c"),
    ),
    request: { model: "scaled" },
    live: drains({ a: "draining" }),
    expected: {
      kind: "saturated",
      replicas: 1,
      scaleOut: expect.objectContaining({ plan: expect.objectContaining({ node: "c" }) }),
    },
  },
];

describe("drained nodes in routing", () => {
  const scaled = profile("scaled", { max_replicas: 2 });
  const all = catalogue(plain, profile("busy", { vram_mb: 20_000 }), scaled);

  it.each(drainCases)("$name", ({ snapshot, request, live, expected }) => {
    expect(resolve(snapshot, all, request, live)).toMatchObject(expected);
  });

  it("routes exactly as before when no node is drained", () => {
    const snapshot = fleet(node("a", { models: [model("plain")] }));
    const none = { nodeDrains: new Map<string, NodeDrain>() };
    expect(resolve(snapshot, all, { model: "plain" }, none)).toEqual(
      resolve(snapshot, all, { model: "plain" }),
    );
  });
});
