import { createCatalogue } from "@cortex/catalogue";
import type { NeuronModel } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { silentLog } from "../log.js";
import { LoadCoordinator } from "./load-coordinator.js";
import { ModelActions } from "./model-actions.js";
import {
  fakeFleet,
  loadAnswer,
  modelsOn,
  neuronError,
  planOn,
  profile,
  resident,
  settle,
} from "./router.fixtures.js";

const setup = (models?: Record<string, NeuronModel[]>) => {
  const { store, neurons, events } = fakeFleet(models);
  const catalogue = createCatalogue([{ ...profile("m"), aliases: ["alias-m"] }]);
  const loads = new LoadCoordinator({
    store,
    client: neurons.client,
    loadTimeoutMs: 60_000,
    log: silentLog,
  });
  const actions = new ModelActions({
    store,
    catalogue: () => catalogue,
    dispatcher: {
      decide: () => {
        throw new Error("not used by these tests");
      },
    },
    loads,
    client: neurons.client,
    unloadTimeoutMs: 60_000,
    now: () => Date.parse("2026-12-01T00:00:00Z"),
  });
  return { store, neurons, loads, actions, events };
};

describe("ModelActions.unload", () => {
  it("an admin unload racing cortex's own load of the same model leaves it unloaded", async () => {
    const { store, neurons, loads, actions } = setup();
    neurons.autoUnload = true;
    // A request's cold load of m is under way when the operator unloads m.
    const loading = loads.load(profile("m"), planOn("a"));
    await settle();
    const unloading = actions.unload({ model: "m" });
    await settle();
    // The load's answer arrives after the unload was asked for: the unload comes after it.
    neurons.loads[0]?.resolve(loadAnswer("m", "a"));
    await loading;
    expect(await unloading).toEqual({ model: "m", status: "unloaded", nodes: ["a"] });
    expect(neurons.unloads.map((call) => `${call.request.model_id}@${call.node}`)).toEqual(["m@a"]);
    // Not "loaded" until the next poll: the neuron has no m, and neither has the snapshot.
    expect(modelsOn(store, "a")).toEqual({});
    expect(store.busy("a")).toBe(false);
  });

  it("unloads from every node that has the model, and keeps polls off the node meanwhile", async () => {
    const { store, neurons, actions, events } = setup({
      a: [resident("m")],
      b: [resident("m"), resident("other")],
    });
    const unloading = actions.unload({ model: "alias-m" });
    await settle();
    expect(store.busy("a")).toBe(true);
    expect(modelsOn(store, "a")).toEqual({ m: "loaded" });
    neurons.unloads[0]?.resolve({ status: "unloaded" });
    await settle();
    expect(store.busy("a")).toBe(false);
    // Already gone from b (unloaded there since the last poll): unloaded all the same.
    neurons.unloads[1]?.reject(neuronError("model_not_found"));
    expect(await unloading).toEqual({ model: "m", status: "unloaded", nodes: ["a", "b"] });
    expect(modelsOn(store, "b")).toEqual({ other: "loaded" });
    expect(events.filter((e) => e.type === "unloaded")).toEqual([
      { type: "unloaded", at: "2026-12-01T00:00:00.000Z", node: "a", model: "m" },
      { type: "unloaded", at: "2026-12-01T00:00:00.000Z", node: "b", model: "m" },
    ]);
  });

  it("refuses a busy model with model_busy and leaves it in the snapshot", async () => {
    const { store, neurons, actions } = setup({ a: [resident("m")] });
    neurons.autoUnload = neuronError("model_busy", "1 request in flight");
    await expect(actions.unload({ model: "m", node: "a" })).rejects.toMatchObject({
      code: "model_busy",
      message: 'model "m" is busy on a; retry, or send force: true',
      retryAfterS: 5,
    });
    expect(modelsOn(store, "a")).toEqual({ m: "loaded" });
    expect(store.busy("a")).toBe(false);
  });

  it("passes force on and answers other neuron failures as upstream_error", async () => {
    const { neurons, actions } = setup({ a: [resident("m")] });
    neurons.autoUnload = neuronError("internal_error", "the harness would not stop");
    await expect(actions.unload({ model: "m", force: true })).rejects.toMatchObject({
      code: "upstream_error",
      message: 'unloading "m" from a failed: the harness would not stop',
    });
    expect(neurons.unloads[0]?.request).toEqual({ model_id: "m", force: true });
  });

  it("says which of node and model is not there", async () => {
    const { neurons, actions } = setup({ a: [resident("m")] });
    await expect(actions.unload({ model: "m", node: "zz" })).rejects.toMatchObject({
      code: "not_found",
      param: "node",
    });
    await expect(actions.unload({ model: "nope" })).rejects.toMatchObject({
      code: "model_not_found",
      message: 'model "nope" is not on any node',
    });
    expect(neurons.unloads).toHaveLength(0);
  });
});

describe("ModelActions.logs", () => {
  it("reads the logs from the one node that has the model, or the named one", async () => {
    const { neurons, actions } = setup({ a: [resident("m")], b: [resident("m")] });
    neurons.logs = "line 1\n";
    expect(await actions.logs("alias-m", "b")).toBe("line 1\n");
    await expect(actions.logs("m")).rejects.toMatchObject({
      code: "invalid_request_error",
      message: 'model "m" is on a, b: name one with ?node=',
      param: "node",
    });
    await expect(actions.logs("other")).rejects.toMatchObject({ code: "model_not_found" });
    neurons.logs = new Error("socket hang up");
    await expect(actions.logs("m", "a")).rejects.toMatchObject({
      code: "upstream_error",
      message: 'reading the logs of "m" from a failed: socket hang up',
    });
  });
});
