import type { FleetEvent } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { gate, model, settle, setup, stopPollers } from "./poller.fixtures.js";

// Suspect nodes (issue 16): a request that failed to connect or timed out marks its node
// unhealthy at once and has it polled now; only a poll sent after that can bring it back, and
// failed polls keep counting. Fake clients and fake timers, as in poller.test.ts.

const REFUSED = "a request failed (ECONNREFUSED)";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 1_000_000 });
});

afterEach(async () => {
  await stopPollers();
  vi.useRealTimers();
});

/** A started poller whose first tick found every node healthy. */
const started = async (names: readonly string[] = ["a", "b"]) => {
  const fleet = setup(names);
  const events: FleetEvent[] = [];
  fleet.store.subscribe((event) => events.push(event));
  fleet.poller.start();
  await settle();
  for (const name of names) expect(fleet.node(name).healthy).toBe(true);
  events.length = 0;
  return { ...fleet, events };
};

describe("Poller.suspect", () => {
  it("marks the node unhealthy at once, polls it now, and a good answer brings it back", async () => {
    const { poller, client, node, events } = await started();
    const held = gate();
    client("a").gate = held.promise;
    poller.suspect("a", REFUSED);
    expect(node("a")).toMatchObject({
      healthy: false,
      error: `suspect: ${REFUSED}`,
      consecutive_failures: 0,
    });
    expect(events).toContainEqual(
      expect.objectContaining({ type: "node_health", node: "a", healthy: false }),
    );
    await settle();
    // Polled now, not at the next tick, and only the suspect node; discovery is asked again.
    expect(client("a").modelsCalls).toBe(2);
    expect(client("a").discoveryCalls).toBe(2);
    expect(client("b").modelsCalls).toBe(1);
    expect(node("a").healthy).toBe(false);
    client("a").gate = null;
    held.open();
    await settle();
    expect(node("a")).toMatchObject({ healthy: true, error: null, consecutive_failures: 0 });
    expect(events.filter((event) => event.type === "node_health")).toHaveLength(2);
  });

  it("is not cleared by a poll that left before it, only by the one after", async () => {
    const { poller, client, node } = await started(["a"]);
    const early = gate();
    client("a").gate = early.promise;
    const before = poller.pollNow("a");
    await settle();
    poller.suspect("a", REFUSED);
    // The early poll answers well, but it was sent before the failure the suspicion saw.
    const late = gate();
    client("a").gate = late.promise;
    client("a").answer = [model("m2")];
    early.open();
    await before;
    expect(node("a")).toMatchObject({ healthy: false, error: `suspect: ${REFUSED}` });
    expect(node("a").models.map((entry) => entry.id)).toEqual(["m2"]);
    await settle();
    expect(client("a").modelsCalls).toBe(3);
    late.open();
    await settle();
    expect(node("a")).toMatchObject({ healthy: true, error: null });
  });

  it("keeps counting failed polls while suspect, and comes back on the first good one", async () => {
    const { poller, client, node } = await started(["a"]);
    client("a").failure = new Error("connection refused");
    poller.suspect("a", REFUSED);
    await settle();
    // One failure is below unhealthy_after_failures (2), but the node stays out.
    expect(node("a")).toMatchObject({
      healthy: false,
      consecutive_failures: 1,
      error: "connection refused",
    });
    await vi.advanceTimersByTimeAsync(1000);
    await settle();
    expect(node("a")).toMatchObject({ healthy: false, consecutive_failures: 2 });
    client("a").failure = null;
    await vi.advanceTimersByTimeAsync(1000);
    await settle();
    expect(node("a")).toMatchObject({ healthy: true, consecutive_failures: 0, error: null });
  });

  it("queues one poll for a burst of failures, not one each", async () => {
    const { poller, client } = await started(["a"]);
    const held = gate();
    client("a").gate = held.promise;
    const under = poller.pollNow("a");
    await settle();
    for (let i = 0; i < 20; i += 1) poller.suspect("a", REFUSED);
    client("a").gate = null;
    held.open();
    await under;
    await settle();
    // The start, the poll under way, and one for all twenty suspicions.
    expect(client("a").modelsCalls).toBe(3);
  });

  it("ignores unknown nodes; a stopped poller marks the node but polls no more", async () => {
    const { poller, client, node } = await started(["a"]);
    poller.suspect("nobody", REFUSED);
    await poller.stop();
    poller.suspect("a", REFUSED);
    await settle();
    expect(node("a").healthy).toBe(false);
    expect(client("a").modelsCalls).toBe(1);
  });
});
