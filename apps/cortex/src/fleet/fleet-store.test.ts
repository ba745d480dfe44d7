import type { FleetEvent, NeuronModel } from "@cortex/protocol";
import { withModel, withModelStatus } from "@cortex/routing";
import { neuronModel } from "@cortex/testkit";
import { describe, expect, it } from "vitest";
import { FleetStore } from "./fleet-store.js";

const model = (id: string, status: NeuronModel["status"] = "loaded"): NeuronModel =>
  neuronModel(id, { status });

const store = () =>
  new FleetStore([{ name: "a", url: "http://a:1/", token: "" }], () =>
    Date.parse("2026-11-26T00:00:00Z"),
  );

describe("FleetStore", () => {
  it("starts with unpolled, unhealthy nodes and trims the URL", () => {
    const fleet = store();
    expect(fleet.snapshot.nodes[0]).toMatchObject({ name: "a", url: "http://a:1", healthy: false });
  });

  it("replaces the snapshot whole and announces health and status changes", () => {
    const fleet = store();
    const events: FleetEvent[] = [];
    fleet.subscribe((event) => events.push(event));
    const before = fleet.snapshot;
    fleet.update((s) => ({
      ...s,
      nodes: s.nodes.map((node) => ({
        ...node,
        healthy: true,
        error: null,
        models: [model("m", "loading")],
      })),
    }));
    fleet.update((s) => withModelStatus(s, "a", "m", "loaded"));
    fleet.update((s) => ({ ...s, nodes: s.nodes.map((n) => ({ ...n, models: [] })) }));
    expect(before.nodes[0]?.healthy).toBe(false);
    expect(events.map((e) => (e.type === "model_state" ? `${e.from}->${e.to}` : e.type))).toEqual([
      "node_health",
      "null->loading",
      "loading->loaded",
      "loaded->null",
    ]);
  });

  it("does nothing for a change that returns the same snapshot", () => {
    const fleet = store();
    let replaced = 0;
    fleet.onReplaced(() => {
      replaced += 1;
    });
    fleet.update((s) => s);
    expect(replaced).toBe(0);
  });

  it("counts cortex's own changes and marks a node busy while a plan runs", async () => {
    const fleet = store();
    expect(fleet.generation("a")).toBe(0);
    await fleet.own("a", async (apply) => {
      apply((s) => withModel(s, "a", model("m")));
      expect(fleet.busy("a")).toBe(true);
    });
    expect(fleet.busy("a")).toBe(false);
    expect(fleet.generation("a")).toBe(2);
  });

  it("ends a scope of its own that fails, and nests scopes on one node", async () => {
    const fleet = store();
    const outer = fleet.own("a", async () => {
      await expect(
        fleet.own("a", async () => {
          throw new Error("the neuron said no");
        }),
      ).rejects.toThrow("the neuron said no");
      expect(fleet.busy("a")).toBe(true);
    });
    await outer;
    expect(fleet.busy("a")).toBe(false);
    expect(fleet.generation("a")).toBe(2);
  });

  it("keeps going when a listener throws", () => {
    const fleet = store();
    const seen: string[] = [];
    fleet.subscribe(() => {
      throw new Error("boom");
    });
    fleet.subscribe((event) => seen.push(event.type));
    fleet.emit({ type: "unloaded", at: "2026-11-26T00:00:00.000Z", node: "a", model: "m" });
    expect(seen).toEqual(["unloaded"]);
  });
});

describe("FleetStore membership", () => {
  it("adds, updates and removes nodes at run time; a new URL starts the node afresh", () => {
    const store = new FleetStore([{ name: "a", url: "http://a:1/" }]);
    store.setNode({ name: "b", url: "http://b:1", priority: 2 });
    expect(store.snapshot.nodes.map((node) => [node.name, node.url, node.priority])).toEqual([
      ["a", "http://a:1", 0],
      ["b", "http://b:1", 2],
    ]);
    store.update((current) => ({
      ...current,
      nodes: current.nodes.map((node) => (node.name === "b" ? { ...node, healthy: true } : node)),
    }));
    const before = store.snapshot;
    store.setNode({ name: "b", url: "http://b:1", priority: 2 });
    expect(store.snapshot).toBe(before);
    store.setNode({ name: "b", url: "http://b:1", priority: 5 });
    expect(store.snapshot.nodes[1]).toMatchObject({ healthy: true, priority: 5 });
    store.setNode({ name: "b", url: "http://b2:1", priority: 5 });
    expect(store.snapshot.nodes[1]).toMatchObject({ url: "http://b2:1", healthy: false });
    expect(store.removeNode("b")).toBe(true);
    expect(store.removeNode("b")).toBe(false);
    expect(store.snapshot.nodes.map((node) => node.name)).toEqual(["a"]);
  });
});
