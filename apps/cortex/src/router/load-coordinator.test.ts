import { ENGINE_OUT_OF_MEMORY, type ModelProfile, type NeuronModel } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { CortexError } from "../errors.js";
import { silentLog } from "../log.js";
import { LoadCoordinator } from "./load-coordinator.js";
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

/** A coordinator over a fake fleet and a clock the test moves. */
const setup = (models?: Record<string, NeuronModel[]>) => {
  const clock = { now: 1_000 };
  const now = () => clock.now;
  const { store, neurons, events } = fakeFleet(models, now);
  const observed: string[] = [];
  const refreshed: string[] = [];
  const outOfMemory: { profile: ModelProfile; node: string; message: string }[] = [];
  const loads = new LoadCoordinator({
    store,
    client: neurons.client,
    loadTimeoutMs: 60_000,
    log: silentLog,
    now,
    refresh: (node) => refreshed.push(node),
    observer: {
      load: (model, node, outcome, seconds) =>
        observed.push(`load ${model}@${node} ${outcome} ${seconds}s`),
      eviction: (model, node) => observed.push(`evicted ${model}@${node}`),
    },
    onOutOfMemory: (failed, node, message) => outOfMemory.push({ profile: failed, node, message }),
  });
  const types = () => events.filter((e) => e.type !== "model_state").map((e) => e.type);
  return { clock, store, neurons, loads, observed, refreshed, types, outOfMemory };
};

describe("LoadCoordinator", () => {
  it("runs one load per model, shows it loading at once, and answers every caller", async () => {
    const { clock, store, neurons, loads, observed, types } = setup();
    const first = loads.load(profile("m"), planOn("a"));
    const second = loads.load(profile("m"), planOn("a"));
    expect(second).toBe(first);
    expect(loads.running("m")).toBe(first);
    expect(loads.runningOn("m")).toBe("a");
    expect(modelsOn(store, "a")).toEqual({ m: "loading" });
    expect(store.busy("a")).toBe(true);
    await settle();
    expect(neurons.loads.map((call) => `${call.request.model_id}@${call.node}`)).toEqual(["m@a"]);
    clock.now = 3_500;
    neurons.loads[0]?.resolve({ ...loadAnswer("m", "a"), url: "http://127.0.0.1:9000" });
    const loaded = await first;
    expect(loaded).toEqual({
      model: "m",
      node: "a",
      // A loopback URL from the neuron is the neuron's own host as cortex reaches it.
      url: "http://a:9000",
      loadMs: 2_500,
      alreadyLoaded: false,
      evicted: [],
    });
    expect(await second).toBe(loaded);
    expect(modelsOn(store, "a")).toEqual({ m: "loaded" });
    expect(store.busy("a")).toBe(false);
    expect(loads.running("m")).toBeUndefined();
    expect(observed).toEqual(["load m@a success 2.5s"]);
    expect(types()).toEqual(["load_started", "load_finished"]);
  });

  it("gives every waiter the same failure and rolls the snapshot back", async () => {
    const { store, neurons, loads, observed, refreshed, types } = setup();
    const waiters = [0, 1, 2].map(() => loads.load(profile("m"), planOn("a")));
    await settle();
    neurons.loads[0]?.reject(neuronError("insufficient_vram", "needs 4000 MiB, 1000 free"));
    const failures = await Promise.all(waiters.map((waiter) => waiter.catch((e: unknown) => e)));
    expect(failures[0]).toBeInstanceOf(CortexError);
    expect(failures[0]).toMatchObject({
      code: "no_capacity",
      message: 'loading "m" on a failed: needs 4000 MiB, 1000 free',
      retryAfterS: 5,
    });
    expect(failures[1]).toBe(failures[0]);
    expect(failures[2]).toBe(failures[0]);
    expect(modelsOn(store, "a")).toEqual({});
    expect(store.busy("a")).toBe(false);
    expect(loads.running("m")).toBeUndefined();
    expect(observed).toEqual(["load m@a failure 0s"]);
    expect(types()).toEqual(["load_started", "load_failed"]);
    expect(refreshed).toEqual(["a"]);
    // A later request starts a new load.
    void loads.load(profile("m"), planOn("a")).catch(() => {});
    await settle();
    expect(neurons.loads).toHaveLength(2);
  });

  it("evicts first, drops the evicted model from the snapshot at once, then loads", async () => {
    const { store, neurons, loads, observed, types } = setup({ a: [resident("old")] });
    const loading = loads.load(profile("m"), planOn("a", [{ node: "a", model: "old" }]));
    expect(modelsOn(store, "a")).toEqual({ m: "loading" });
    await settle();
    expect(neurons.unloads.map((call) => call.request.model_id)).toEqual(["old"]);
    expect(neurons.loads).toHaveLength(0);
    neurons.unloads[0]?.resolve({ status: "unloaded" });
    await settle();
    neurons.loads[0]?.resolve(loadAnswer("m", "a"));
    expect(await loading).toMatchObject({ evicted: [{ node: "a", model: "old" }] });
    expect(modelsOn(store, "a")).toEqual({ m: "loaded" });
    expect(observed).toEqual(["evicted old@a", "load m@a success 0s"]);
    expect(types()).toEqual(["load_started", "evicted", "load_finished"]);
  });

  it("counts an eviction that finds the model already gone as done", async () => {
    const { store, neurons, loads, observed } = setup({ a: [resident("old")] });
    neurons.autoUnload = neuronError("model_not_found", 'model "old" is not on this node');
    neurons.autoLoad = true;
    const loaded = await loads.load(profile("m"), planOn("a", [{ node: "a", model: "old" }]));
    expect(loaded.evicted).toEqual([{ node: "a", model: "old" }]);
    expect(modelsOn(store, "a")).toEqual({ m: "loaded" });
    expect(observed).toEqual(["evicted old@a", "load m@a success 0s"]);
  });

  it("stops at an eviction the neuron refuses: no load, the new model leaves the snapshot", async () => {
    const { store, neurons, loads, refreshed, types } = setup({ a: [resident("old")] });
    neurons.autoUnload = neuronError("model_busy", 'model "old" has 1 request(s) in flight');
    const failure = await loads
      .load(profile("m"), planOn("a", [{ node: "a", model: "old" }]))
      .catch((e: unknown) => e);
    expect(failure).toMatchObject({
      code: "no_capacity",
      message: 'evicting "old" from a failed: model "old" has 1 request(s) in flight',
    });
    expect(neurons.loads).toHaveLength(0);
    // The poll asked for at once says whether "old" is still there.
    expect(modelsOn(store, "a")).toEqual({});
    expect(refreshed).toEqual(["a"]);
    expect(store.busy("a")).toBe(false);
    expect(types()).toEqual(["load_started", "load_failed"]);
  });

  it.each([
    ["upstream_timeout", "upstream_timeout", 5],
    ["harness_not_found", "harness_not_found", null],
    ["invalid_request_error", "invalid_request_error", null],
    ["load_failed", "load_failed", 5],
    ["upstream_error", "load_failed", 5],
  ])("answers a neuron's %s as %s", async (code, expected, retryAfterS) => {
    const { neurons, loads } = setup();
    const loading = loads.load(profile("m"), planOn("a"));
    await settle();
    neurons.loads[0]?.reject(neuronError(code, "no"));
    await expect(loading).rejects.toMatchObject({ code: expected, retryAfterS });
  });

  it("reports an engine out of GPU memory before its waiters see the failure, and only that", async () => {
    const { neurons, loads, outOfMemory } = setup();
    const waiting = loads.load(profile("m"), planOn("a"));
    await settle();
    const message = `model "m": ${ENGINE_OUT_OF_MEMORY} (requested_mb=4096): "cudaMalloc failed: out of memory"`;
    neurons.loads[0]?.reject(neuronError("insufficient_vram", message));
    let reportedFirst = 0;
    const failure = await waiting.catch((error: unknown) => {
      reportedFirst = outOfMemory.length;
      return error;
    });
    expect(failure).toMatchObject({ code: "no_capacity" });
    expect(reportedFirst).toBe(1);
    expect(outOfMemory).toEqual([
      { profile: profile("m"), node: "a", message: `loading "m" on a failed: ${message}` },
    ]);

    // The neuron's own refusal (no room by its reading) raises nothing.
    const refused = loads.load(profile("m"), planOn("a"));
    await settle();
    neurons.loads[1]?.reject(neuronError("insufficient_vram", "needs 4000 MiB, 1000 free"));
    await refused.catch(() => {});
    expect(outOfMemory).toHaveLength(1);
  });
});
