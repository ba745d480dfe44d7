import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { gate, model, settle, setup, stopPollers } from "./poller.fixtures.js";

// The poller with fake clients and fake timers: what it asks, when, and what it makes of the
// answers. Only setTimeout/Date are faked, so a real setImmediate can let promises settle.

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 1_000_000 });
});

afterEach(async () => {
  await stopPollers();
  vi.useRealTimers();
});

describe("Poller schedule", () => {
  it("polls discovery and models of every node at once on start, in one store update", async () => {
    const { poller, client, node, updates, discovered } = setup();
    poller.start();
    await settle();
    for (const name of ["a", "b"]) {
      expect(client(name).modelsCalls).toBe(1);
      expect(client(name).discoveryCalls).toBe(1);
      expect(node(name)).toMatchObject({
        healthy: true,
        consecutive_failures: 0,
        error: null,
        last_ok_at: new Date(1_000_000).toISOString(),
        last_poll_at: new Date(1_000_000).toISOString(),
        node: { name },
        devices: [{ index: 0 }],
        harnesses: [{ name: "llamacpp" }],
        models: [{ id: "m1", status: "loaded" }],
      });
    }
    expect(updates).toHaveBeenCalledTimes(1);
    expect(discovered.sort()).toEqual(["a", "b"]);
  });

  it("ticks every interval and asks discovery only on its own cadence", async () => {
    const { poller, client, updates } = setup();
    poller.start();
    await settle();
    await vi.advanceTimersByTimeAsync(999);
    await settle();
    expect(client("a").modelsCalls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await settle();
    expect(client("a").modelsCalls).toBe(2);
    expect(client("a").discoveryCalls).toBe(1);
    expect(updates).toHaveBeenCalledTimes(2);
    for (let i = 0; i < 9; i += 1) {
      await vi.advanceTimersByTimeAsync(1000);
      await settle();
    }
    expect(client("a").modelsCalls).toBe(11);
    expect(client("a").discoveryCalls).toBe(2);
  });

  it("never overlaps ticks: a slow tick is followed right after it ends", async () => {
    const { poller, client } = setup();
    const slow = gate();
    client("a").gate = slow.promise;
    poller.start();
    await settle();
    await vi.advanceTimersByTimeAsync(3500);
    await settle();
    expect(client("a").modelsCalls).toBe(1);
    expect(client("b").modelsCalls).toBe(1);
    client("a").gate = null;
    slow.open();
    await settle();
    // The next tick started as soon as the slow one ended, and its interval counts from there.
    expect(client("b").modelsCalls).toBe(2);
    await vi.advanceTimersByTimeAsync(999);
    await settle();
    expect(client("b").modelsCalls).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    await settle();
    expect(client("b").modelsCalls).toBe(3);
  });

  it("bounds the calls in flight by the concurrency", async () => {
    const names = ["a", "b", "c", "d", "e", "f"];
    const { poller, client, activity, node } = setup(names, { concurrency: 2 });
    const held = gate();
    for (const name of names) client(name).gate = held.promise;
    const tick = poller.tick();
    await settle();
    expect(activity.now).toBe(2);
    held.open();
    await tick;
    expect(activity.max).toBe(2);
    for (const name of names) expect(node(name).healthy).toBe(true);
  });

  it("stops: aborts the calls in flight, applies nothing, schedules nothing", async () => {
    const { poller, client, updates, node } = setup();
    client("a").gate = gate().promise;
    poller.start();
    await settle();
    await poller.stop();
    expect(client("a").signals.every((signal) => signal.aborted)).toBe(true);
    expect(updates).not.toHaveBeenCalled();
    expect(node("a").error).toBe("not polled yet");
    await vi.advanceTimersByTimeAsync(5000);
    await settle();
    expect(client("b").modelsCalls).toBe(1);
  });

  it("runs pollNow after the tick under way, for the one node asked", async () => {
    const { poller, client, updates } = setup();
    const held = gate();
    client("a").gate = held.promise;
    const tick = poller.tick();
    const now = poller.pollNow("b");
    await settle();
    expect(client("b").modelsCalls).toBe(1);
    held.open();
    await tick;
    await now;
    expect(client("a").modelsCalls).toBe(1);
    expect(client("b").modelsCalls).toBe(2);
    expect(updates).toHaveBeenCalledTimes(2);
    await poller.pollNow("nobody");
    expect(updates).toHaveBeenCalledTimes(2);
  });
});

describe("Poller health", () => {
  it("counts failures, keeps the last known state, and marks a node unhealthy at the threshold", async () => {
    const { poller, client, node } = setup(["a"]);
    await poller.tick();
    const before = node("a");
    client("a").failure = new Error('neuron "a": GET /models failed: connection refused');
    vi.setSystemTime(1_001_000);
    await poller.tick();
    expect(node("a")).toMatchObject({
      healthy: true,
      consecutive_failures: 1,
      error: 'neuron "a": GET /models failed: connection refused',
      last_poll_at: new Date(1_001_000).toISOString(),
      last_ok_at: new Date(1_000_000).toISOString(),
    });
    await poller.tick();
    expect(node("a")).toMatchObject({ healthy: false, consecutive_failures: 2 });
    expect(node("a").models).toBe(before.models);
    expect(node("a").devices).toBe(before.devices);

    // Back: healthy at once, and discovery asked again although its interval has not passed.
    client("a").failure = null;
    const discoveries = client("a").discoveryCalls;
    await poller.tick();
    expect(node("a")).toMatchObject({ healthy: true, consecutive_failures: 0, error: null });
    expect(client("a").discoveryCalls).toBe(discoveries + 1);
  });

  it("keeps a never-polled node unhealthy, and one never discovered too", async () => {
    const { poller, client, node } = setup();
    client("a").failure = new Error("connection refused");
    client("b").discoveryFailure = new Error("discovery broke");
    await poller.tick();
    expect(node("a")).toMatchObject({ healthy: false, consecutive_failures: 1 });
    expect(node("b")).toMatchObject({ healthy: false, consecutive_failures: 1, node: null });
    expect(node("b").error).toContain("discovery broke");
    client("b").discoveryFailure = null;
    await poller.tick();
    expect(node("b")).toMatchObject({ healthy: true, node: { name: "b" } });
  });

  it("stays healthy when only a later discovery fails, and asks it again", async () => {
    const { poller, client, node } = setup(["a"]);
    await poller.tick();
    client("a").discoveryFailure = new Error("discovery broke");
    vi.setSystemTime(1_000_000 + 10_000);
    await poller.tick();
    expect(node("a")).toMatchObject({ healthy: true, error: null, node: { name: "a" } });
    await poller.tick();
    expect(client("a").discoveryCalls).toBe(3);
  });

  it("survives a discovery listener that throws", async () => {
    const { poller, node } = setup(["a"], {
      onDiscovery: () => {
        throw new Error("listener broke");
      },
    });
    await poller.tick();
    expect(node("a").healthy).toBe(true);
  });
});

describe("Poller answers", () => {
  it("keeps cortex's own models when it changed the node while /models was under way", async () => {
    const { poller, client, node, store } = setup(["a"]);
    await poller.tick();
    const held = gate();
    client("a").gate = held.promise;
    client("a").answer = [model("m1")];
    vi.setSystemTime(1_005_000);
    const tick = poller.tick();
    await settle();
    // Cortex evicts m1 and starts m2 while the neuron's (older) answer is on its way.
    const own = [model("m2", { status: "loading" })];
    await store.own("a", async (apply) => {
      apply((current) => ({
        ...current,
        nodes: current.nodes.map((n) => (n.name === "a" ? { ...n, models: own } : n)),
      }));
    });
    held.open();
    await tick;
    expect(node("a").models).toBe(own);
    expect(node("a").last_poll_at).toBe(new Date(1_005_000).toISOString());
    expect(node("a").healthy).toBe(true);

    // The next answer left after cortex's change: it is taken.
    client("a").gate = null;
    client("a").answer = [model("m2")];
    await poller.tick();
    expect(node("a").models).toEqual([model("m2")]);
  });

  it("leaves a node's models alone while cortex carries out a plan there", async () => {
    const { poller, client, node, store } = setup(["a"]);
    await poller.tick();
    const own = [model("m2", { status: "loading" })];
    const plan = gate();
    const owned = store.own("a", async (apply) => {
      apply((current) => ({
        ...current,
        nodes: current.nodes.map((n) => (n.name === "a" ? { ...n, models: own } : n)),
      }));
      await plan.promise;
    });
    // Sent after the plan began, answered before the neuron got to it: still the old models.
    client("a").answer = [model("m1")];
    await poller.tick();
    expect(node("a").models).toBe(own);
    plan.open();
    await owned;
    client("a").answer = [model("m2")];
    await poller.tick();
    expect(node("a").models).toEqual([model("m2")]);
  });

  it("reuses unchanged models, devices and untouched nodes by reference", async () => {
    const { poller, client, node, store } = setup(["a", "b"]);
    client("a").answer = [model("m1"), model("m2")];
    await poller.tick();
    const first = node("a");
    const b = node("b");
    await poller.pollNow("a");
    const second = node("a");
    expect(second.models).toBe(first.models);
    expect(second.devices).toBe(first.devices);
    expect(node("b")).toBe(b);

    client("a").answer = [model("m1"), model("m2", { in_flight: 3 })];
    await poller.pollNow("a");
    const third = node("a");
    expect(third.models).not.toBe(first.models);
    expect(third.models[0]).toBe(first.models[0]);
    expect(third.models[1]).toMatchObject({ id: "m2", in_flight: 3 });
    expect(store.snapshot.nodes[1]).toBe(b);
  });

  it("announces health flips and model changes through the store", async () => {
    const { poller, client, store } = setup(["a"]);
    const events: string[] = [];
    store.subscribe((event) => events.push(event.type));
    await poller.tick();
    client("a").answer = [];
    await poller.tick();
    expect(events).toEqual(["node_health", "model_state", "model_state"]);
  });
});
