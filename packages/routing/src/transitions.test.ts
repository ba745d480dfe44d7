import { describe, expect, it } from "vitest";
import { at, catalogue, fleet, gpu, model, node, profile } from "./fleet.fixtures.js";
import { indexSnapshot } from "./fleet-index.js";
import { toLoadRequest } from "./load-request.js";
import { planPlacement } from "./placement.js";
import { resolve } from "./resolve.js";
import { applyLoadPlan, withModelStatus, withoutModel } from "./transitions.js";
import type { LoadPlan } from "./types.js";

const newcomer = profile("newcomer", { vram_mb: 16_000, residency_priority: 10, quant: "Q4_K_M" });
const victim = profile("victim", { vram_mb: 16_000 });
const cat = catalogue(newcomer, victim);

const planFor = (snapshot: ReturnType<typeof fleet>, incoming = newcomer): LoadPlan => {
  const result = planPlacement(indexSnapshot(snapshot), incoming, cat, undefined);
  if ("kind" in result) throw new Error(result.message);
  return result;
};

describe("snapshot transitions", () => {
  it("never routes to a model it has just evicted", () => {
    const before = fleet(
      node("a", { models: [model("victim", { vram_mb: 16_000, last_accessed: at(900) })] }),
      node("b", { devices: [gpu(0, 8_000)], models: [] }),
    );
    const plan = planFor(before);
    expect(plan.evict).toEqual([{ node: "a", model: "victim" }]);
    const after = applyLoadPlan(before, newcomer, plan);
    // The evicted model is gone from "a"; asking for it must not route there.
    const decision = resolve(after, cat, { model: "victim" });
    expect(decision.kind).not.toBe("route");
    expect(decision).not.toMatchObject({ node: "a" });
  });

  it("counts a planned load's memory before the next poll, so two loads do not share a GPU", () => {
    const before = fleet(node("a"), node("b"));
    const first = planFor(before);
    const after = applyLoadPlan(before, newcomer, first);
    const second = planFor(after, profile("other", { vram_mb: 16_000 }));
    expect(second.node).not.toBe(first.node);
  });

  it("makes requests for the loading model wait on that load", () => {
    const before = fleet(node("a"), node("b"));
    const after = applyLoadPlan(before, newcomer, planFor(before));
    expect(resolve(after, cat, { model: "newcomer" })).toMatchObject({
      kind: "lazy",
      reason: "loading",
    });
  });

  it("leaves the previous snapshot untouched", () => {
    const before = fleet(node("a", { models: [model("victim", { vram_mb: 16_000 })] }));
    const copy = structuredClone(before);
    applyLoadPlan(before, newcomer, planFor(before));
    withModelStatus(before, "a", "victim", "failed", "boom");
    withoutModel(before, "a", "victim");
    expect(before).toEqual(copy);
  });

  it("returns the same snapshot when the node is unknown", () => {
    const before = fleet(node("a"));
    expect(withoutModel(before, "zzz", "m")).toBe(before);
  });

  it("changes one model's status and keeps the rest", () => {
    const before = fleet(node("a", { models: [model("m1"), model("m2")] }));
    const after = withModelStatus(before, "a", "m1", "recovering");
    expect(after.nodes[0]?.models.map((m) => m.status)).toEqual(["recovering", "loaded"]);
    expect(resolve(after, cat, { model: "m1" })).toMatchObject({ kind: "hold" });
  });

  it("turns a plan into the neuron's load request", () => {
    const plan = planFor(fleet(node("a", { devices: [gpu(0, 24_000), gpu(1, 24_000)] })));
    expect(toLoadRequest(newcomer, plan)).toEqual({
      model_id: "newcomer",
      harness: "llamacpp",
      source: "newcomer.gguf",
      quant: "Q4_K_M",
      devices: plan.devices,
      tensor_parallel: 1,
      vram_mb: 16_000,
      max_concurrency: 4,
      args: {},
      residency_priority: 10,
    });
  });
});
