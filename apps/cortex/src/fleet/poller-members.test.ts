import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeClient, gate, settle, setup, stopPollers } from "./poller.fixtures.js";

// Nodes added and removed while the poller runs (a neuron joined or was forgotten, cortex.yaml
// reloaded): a new one is polled on demand and on every tick; a removed one no more; a poll
// that left with a client since replaced applies nothing.

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 1_000_000 });
});

afterEach(async () => {
  await stopPollers();
  vi.useRealTimers();
});

describe("Poller membership", () => {
  it("polls a node added at run time, and stops polling one removed", async () => {
    const { store, poller, client } = setup(["a"]);
    poller.start();
    await settle();
    const added = new FakeClient("c", { now: 0, max: 0 });
    store.setNode({ name: "c", url: "http://c:13131" });
    poller.addTarget("c", added);
    await poller.pollNow("c");
    expect(added.modelsCalls).toBe(1);
    expect(added.discoveryCalls).toBe(1);
    expect(store.snapshot.nodes.find((node) => node.name === "c")?.healthy).toBe(true);

    await vi.advanceTimersByTimeAsync(1000);
    await settle();
    expect(added.modelsCalls).toBe(2);

    poller.removeTarget("c");
    expect(store.removeNode("c")).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    await settle();
    expect(added.modelsCalls).toBe(2);
    expect(client("a").modelsCalls).toBe(3);
    expect(store.snapshot.nodes.map((node) => node.name)).toEqual(["a"]);
  });

  it("drops the answer of a poll whose client was replaced while it was out", async () => {
    const { store, poller, client } = setup(["a"]);
    const held = gate();
    client("a").gate = held.promise;
    const polling = poller.pollNow("a");
    await settle();
    // The node moved: another URL, another client, not heard from yet.
    store.setNode({ name: "a", url: "http://elsewhere:13131" });
    poller.addTarget("a", new FakeClient("a", { now: 0, max: 0 }));
    held.open();
    await polling;
    const node = store.snapshot.nodes[0];
    expect([node?.url, node?.healthy, node?.last_poll_at]).toEqual([
      "http://elsewhere:13131",
      false,
      null,
    ]);
  });
});
