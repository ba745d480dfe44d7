import type { FleetEvent, NeuronModel } from "@cortex/protocol";
import { replicaKey, withModelStatus, withoutModel } from "@cortex/routing";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { FleetStore } from "../fleet/fleet-store.js";
import { silentLog } from "../log.js";
import { neuronError, resident, storeWith } from "../router/router.fixtures.js";
import { type CortexState, openState } from "../state/database.js";
import { DrainTable } from "../state/drain-table.js";
import { canMove, DRAIN_MOVES, drainWork } from "./drain-work.js";
import { NodeDrains } from "./drains.js";

// The drain state machine against a real fleet store and state database, with fake timers:
// draining → in-flight requests finish → models unload → drained; resume; restarts.

const T0 = Date.parse("2026-03-01T10:00:00.000Z");

interface Rig {
  readonly store: FleetStore;
  readonly drains: NodeDrains;
  readonly events: FleetEvent[];
  readonly unloads: string[];
  readonly reserved: Map<string, number>;
  readonly changed: { count: number };
  /** Unloads reject with this while set (the neuron said the model is busy). */
  refuse: Error | null;
}

let state: CortexState;

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
  state = openState(":memory:");
});

afterEach(() => {
  state.close();
  vi.useRealTimers();
});

const rig = (models: Record<string, NeuronModel[]>, table = new DrainTable(state.db)): Rig => {
  const store = storeWith(models, Date.now);
  const events: FleetEvent[] = [];
  store.subscribe((event) => events.push(event));
  const reserved = new Map<string, number>();
  const changed = { count: 0 };
  const unloads: string[] = [];
  const self: { refuse: Error | null } = { refuse: null };
  const drains = new NodeDrains({
    fleet: store,
    store: table,
    live: () => ({ reserved }),
    unload: async (node, model) => {
      unloads.push(`${node}/${model}`);
      if (self.refuse) throw self.refuse;
      store.update((snapshot) => withoutModel(snapshot, node, model));
    },
    changed: () => {
      changed.count += 1;
    },
    log: silentLog,
  });
  return Object.assign(self, { store, drains, events, unloads, reserved, changed });
};

/** The node's models with their reported in-flight count changed, as a poll brings them. */
const report = (store: FleetStore, node: string, model: string, inFlight: number) =>
  store.update((snapshot) => ({
    ...snapshot,
    nodes: snapshot.nodes.map((entry) =>
      entry.name !== node
        ? entry
        : {
            ...entry,
            models: entry.models.map((m) => (m.id === model ? { ...m, in_flight: inFlight } : m)),
          },
    ),
  }));

/**
 * Runs what is due now and what that schedules for right after (a look after each change):
 * a fake setImmediate scheduled by another one runs only once the clock moves, so it moves a
 * few milliseconds, well short of the next periodic look.
 */
const soon = async (): Promise<void> => {
  for (let i = 0; i < 4; i += 1) await vi.advanceTimersByTimeAsync(1);
};

const drainEvents = (events: readonly FleetEvent[]) =>
  events
    .filter((event) => event.type.startsWith("node_"))
    .map((event) => `${event.type} ${"node" in event ? event.node : ""}`);

describe("drainWork", () => {
  it("unloads idle residents, waits for busy and loading ones, ignores the rest", () => {
    const [node] = storeWith({
      a: [
        resident("idle"),
        { ...resident("running"), in_flight: 1 },
        { ...resident("queued"), queued: 2 },
        resident("reserved"),
        resident("waking", "loading"),
        resident("crashed", "recovering"),
        resident("sleeping", "unloaded"),
        resident("broken", "failed"),
      ],
    }).snapshot.nodes;
    if (!node) throw new Error("no node");
    const live = { reserved: new Map([[replicaKey("a", "reserved"), 1]]) };
    expect(drainWork(node, live)).toEqual({
      unload: ["idle", "crashed"],
      busy: ["running", "queued", "reserved", "waking"],
      empty: false,
    });
    expect(drainWork({ ...node, models: [resident("gone", "unloaded")] }, live).empty).toBe(true);
  });

  it("has one table of moves", () => {
    expect(DRAIN_MOVES).toEqual({
      serving: ["draining"],
      draining: ["drained", "serving"],
      drained: ["draining", "serving"],
    });
    expect(canMove("serving", "drained")).toBe(false);
    expect(canMove("serving", "serving")).toBe(false);
  });
});

describe("NodeDrains", () => {
  it("drains: in-flight requests finish, then its models unload, then it is drained", async () => {
    const r = rig({ a: [resident("busy"), resident("idle")], b: [resident("busy")] });
    r.reserved.set(replicaKey("a", "busy"), 1);
    r.drains.start();

    expect(r.drains.drain("a")).toEqual({
      node: "a",
      drain: "draining",
      since: new Date(T0).toISOString(),
    });
    expect(r.drains.states.get("a")).toBe("draining");
    expect(r.changed.count).toBe(1);
    await soon();
    // The idle model goes at once; the one with a request in flight stays.
    expect(r.unloads).toEqual(["a/idle"]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(r.unloads).toEqual(["a/idle"]);
    expect(r.drains.states.get("a")).toBe("draining");

    // The request finishes; the neuron still reports it until its next poll.
    r.reserved.delete(replicaKey("a", "busy"));
    report(r.store, "a", "busy", 1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.unloads).toEqual(["a/idle"]);
    report(r.store, "a", "busy", 0);
    await soon();
    expect(r.unloads).toEqual(["a/idle", "a/busy"]);
    expect(r.drains.states.get("a")).toBe("drained");
    expect(drainEvents(r.events)).toEqual(["node_draining a", "node_drained a"]);
    // Only the drained node lost its models.
    expect(r.store.snapshot.nodes.find((n) => n.name === "b")?.models).toHaveLength(1);
    const [row] = new DrainTable(state.db).read();
    expect(row).toMatchObject({ node: "a", state: "drained" });
    expect(row?.sinceMs).toBeGreaterThan(T0 + 6000);
    r.drains.stop();
  });

  it("tries a refused unload again on the next look, while the node still drains", async () => {
    const r = rig({ a: [resident("m")] });
    r.refuse = neuronError("model_busy");
    r.drains.start();
    r.drains.drain("a");
    await soon();
    expect(r.unloads).toEqual(["a/m"]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.unloads).toEqual(["a/m", "a/m"]);
    r.refuse = null;
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.drains.states.get("a")).toBe("drained");
    r.drains.drain("a");
    r.drains.resume("a");
    await vi.advanceTimersByTimeAsync(3000);
    expect(r.unloads).toHaveLength(3);
    r.drains.stop();
  });

  it("waits for a loading model, and for a node that is down", async () => {
    const r = rig({ a: [resident("m", "loading")] });
    r.drains.start();
    r.drains.drain("a");
    await vi.advanceTimersByTimeAsync(2000);
    expect(r.unloads).toEqual([]);
    r.store.update((snapshot) => ({
      ...withModelStatus(snapshot, "a", "m", "loaded"),
      nodes: withModelStatus(snapshot, "a", "m", "loaded").nodes.map((n) => ({
        ...n,
        healthy: false,
      })),
    }));
    await vi.advanceTimersByTimeAsync(2000);
    expect(r.unloads).toEqual([]);
    r.store.update((snapshot) => ({
      ...snapshot,
      nodes: snapshot.nodes.map((n) => ({ ...n, healthy: true })),
    }));
    await soon();
    expect(r.unloads).toEqual(["a/m"]);
    expect(r.drains.states.get("a")).toBe("drained");
    r.drains.stop();
  });

  it("drains again when a model shows up on a drained node", async () => {
    const r = rig({ a: [] });
    r.drains.start();
    r.drains.drain("a");
    await soon();
    expect(r.drains.states.get("a")).toBe("drained");
    r.store.update((snapshot) => ({
      ...snapshot,
      nodes: snapshot.nodes.map((n) => ({ ...n, models: [resident("preloaded")] })),
    }));
    await soon();
    expect(r.unloads).toEqual(["a/preloaded"]);
    expect(drainEvents(r.events)).toEqual([
      "node_draining a",
      "node_drained a",
      "node_draining a",
      "node_drained a",
    ]);
    r.drains.stop();
  });

  it("resume ends it, both are idempotent, and unknown nodes are 404", async () => {
    const r = rig({ a: [] });
    expect(r.drains.resume("a")).toEqual({ node: "a", drain: null, since: null });
    r.drains.drain("a");
    vi.advanceTimersByTime(500);
    expect(r.drains.drain("a")).toMatchObject({
      drain: "draining",
      since: new Date(T0).toISOString(),
    });
    expect(r.drains.resume("a")).toEqual({ node: "a", drain: null, since: null });
    expect(r.drains.resume("a")).toEqual({ node: "a", drain: null, since: null });
    expect(drainEvents(r.events)).toEqual(["node_draining a", "node_resumed a"]);
    expect(r.changed.count).toBe(2);
    expect(new DrainTable(state.db).read()).toEqual([]);
    expect(() => r.drains.drain("nope")).toThrow(
      expect.objectContaining({ code: "not_found", message: 'node "nope" is not in the fleet' }),
    );
    expect(() => r.drains.resume("nope")).toThrow(expect.objectContaining({ code: "not_found" }));
  });

  it("keeps drains across a restart, and a kept drain of a node gone from the fleet can end", async () => {
    const table = new DrainTable(state.db);
    const first = rig({ a: [resident("m")], b: [] }, table);
    first.drains.start();
    first.drains.drain("a");
    first.drains.drain("b");
    first.drains.stop();

    const again = rig({ a: [resident("m")] }, new DrainTable(state.db));
    expect([...again.drains.states]).toEqual([
      ["a", "draining"],
      ["b", "draining"],
    ]);
    expect(again.drains.stateOf("a").since).toBe(new Date(T0).toISOString());
    // The draining one carries on where it stopped.
    again.drains.start();
    await soon();
    expect(again.unloads).toEqual(["a/m"]);
    expect(again.drains.states.get("a")).toBe("drained");
    expect(again.drains.resume("b")).toEqual({ node: "b", drain: null, since: null });
    again.drains.stop();
  });

  it("changes nothing when the database refuses the write", () => {
    const r = rig(
      { a: [] },
      Object.assign(new DrainTable(state.db), {
        save: () => {
          throw new Error("disk full");
        },
      }),
    );
    expect(() => r.drains.drain("a")).toThrow("disk full");
    expect(r.drains.states.size).toBe(0);
    expect(r.events).toEqual([]);
  });
});
