import type { FleetEvent } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { gate, model, settle, setup, stopPollers } from "./poller.fixtures.js";
import type { PollerOptions } from "./poller.js";

// News from a neuron's event stream (Poller.news): applied to the snapshot at once with the
// same events a poll's changes make, never undone by a poll that left before it, held back
// while cortex carries out a change of its own there. Fake clients and timers, as in
// poller.test.ts.

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 1_000_000 });
});

afterEach(async () => {
  await stopPollers();
  vi.useRealTimers();
});

/** A started poller whose first tick found every node healthy, holding m1 loaded. */
const started = async (options: Partial<PollerOptions> = {}) => {
  const fleet = setup(["a", "b"], options);
  const events: FleetEvent[] = [];
  fleet.store.subscribe((event) => events.push(event));
  fleet.poller.start();
  await settle();
  events.length = 0;
  return { ...fleet, events };
};

const ids = (models: readonly { id: string; status: string }[]) =>
  models.map((entry) => `${entry.id}:${entry.status}`);

describe("Poller.news", () => {
  it("applies a model's change at once and announces it as a poll's change would be", async () => {
    const { poller, node, events } = await started();
    poller.news("a", { kind: "model", model: model("m2", { status: "loading" }) });
    expect(ids(node("a").models)).toEqual(["m1:loaded", "m2:loading"]);
    poller.news("a", { kind: "model", model: model("m2", { status: "loaded" }) });
    poller.news("a", { kind: "removed", id: "m1" });
    expect(ids(node("a").models)).toEqual(["m2:loaded"]);
    expect(events).toEqual([
      expect.objectContaining({
        type: "model_state",
        node: "a",
        model: "m2",
        from: null,
        to: "loading",
      }),
      expect.objectContaining({
        type: "model_state",
        node: "a",
        model: "m2",
        from: "loading",
        to: "loaded",
      }),
      expect.objectContaining({
        type: "model_state",
        node: "a",
        model: "m1",
        from: "loaded",
        to: null,
      }),
    ]);
    // The other node and the node's health are untouched.
    expect(ids(node("b").models)).toEqual(["m1:loaded"]);
    expect(node("a").healthy).toBe(true);
  });

  it("changes nothing, not even the snapshot, for news that is no news", async () => {
    const { poller, store, events } = await started();
    const before = store.snapshot;
    poller.news("a", { kind: "model", model: model("m1") });
    poller.news("a", { kind: "removed", id: "nope" });
    poller.news("a", { kind: "snapshot", models: [model("m1")] });
    expect(store.snapshot).toBe(before);
    expect(events).toEqual([]);
  });

  it("replaces the whole list with a snapshot, keeping unchanged models' objects", async () => {
    const { poller, node, events } = await started();
    const m1 = node("a").models[0];
    poller.news("a", {
      kind: "snapshot",
      models: [model("m1"), model("m3", { status: "failed" })],
    });
    expect(node("a").models[0]).toBe(m1);
    expect(ids(node("a").models)).toEqual(["m1:loaded", "m3:failed"]);
    expect(events).toEqual([
      expect.objectContaining({ type: "model_state", model: "m3", from: null, to: "failed" }),
    ]);
  });

  it("keeps news a poll answer that left before it would undo, and takes the rest of the answer", async () => {
    const { poller, client, node } = await started();
    const held = gate();
    client("a").gate = held.promise;
    // The neuron answers as things were when the poll left: m1 busy, no m2.
    client("a").answer = [model("m1", { in_flight: 3 })];
    const poll = poller.pollNow("a");
    await settle();
    poller.news("a", { kind: "model", model: model("m2", { status: "loaded" }) });
    held.open();
    await poll;
    expect(ids(node("a").models)).toEqual(["m1:loaded", "m2:loaded"]);
    expect(node("a").models[0]?.in_flight).toBe(3);
    // The next poll has no news to be older than: its answer counts in full.
    client("a").gate = null;
    await poller.pollNow("a");
    expect(ids(node("a").models)).toEqual(["m1:loaded"]);
  });

  it("does not let a poll that left before a removal bring the model back", async () => {
    const { poller, client, node } = await started();
    const held = gate();
    client("a").gate = held.promise;
    const poll = poller.pollNow("a");
    await settle();
    poller.news("a", { kind: "removed", id: "m1" });
    held.open();
    await poll;
    expect(node("a").models).toEqual([]);
  });

  it("holds news back while cortex changes the node's models itself, then polls it", async () => {
    const { poller, store, client, node } = await started();
    const done = gate();
    const own = store.own("a", () => done.promise);
    poller.news("a", { kind: "model", model: model("m2", { status: "loading" }) });
    expect(ids(node("a").models)).toEqual(["m1:loaded"]);
    const calls = client("a").modelsCalls;
    client("a").answer = [model("m1"), model("m2")];
    done.open();
    await own;
    await settle();
    expect(client("a").modelsCalls).toBe(calls + 1);
    expect(ids(node("a").models)).toEqual(["m1:loaded", "m2:loaded"]);
  });

  it("counts the news's in-flight figures against what cortex has in flight there now", async () => {
    const calls: string[] = [];
    const { poller } = await started({
      onModelsSent: (name) => calls.push(`sent ${name}`),
      onModelsApplied: (name) => calls.push(`applied ${name}`),
    });
    calls.length = 0;
    poller.news("a", { kind: "model", model: model("m1", { in_flight: 2 }) });
    expect(calls).toEqual(["sent a", "applied a", "sent a"]);
  });

  it("ignores news about a node it does not poll", async () => {
    const { poller, store } = await started();
    const before = store.snapshot;
    poller.news("zz", { kind: "model", model: model("m2") });
    expect(store.snapshot).toBe(before);
  });
});
