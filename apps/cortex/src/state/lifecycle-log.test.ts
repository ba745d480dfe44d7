import type { DiscoveryAnswer, FleetEvent } from "@cortex/protocol";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FleetStore } from "../fleet/fleet-store.js";
import { type CortexState, openState } from "./database.js";
import { eventEntry, LifecycleLog } from "./lifecycle-log.js";
import { recentEvents } from "./queries.js";
import { nodes } from "./schema.js";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const iso = (offsetMs: number): string => new Date(T0 + offsetMs).toISOString();

const discovery: DiscoveryAnswer = {
  node: {
    name: "gpu-1",
    hostname: "gpu-1.lan",
    os: "linux",
    kernel: "6.8",
    cpu: "epyc",
    memory_mb: 65_536,
  },
  devices: [],
  harnesses: [{ name: "llama-server", kind: "llama-server" }],
};

describe("eventEntry", () => {
  it.each<[FleetEvent, ReturnType<typeof eventEntry>]>([
    [
      { type: "node_health", at: iso(1), node: "n", healthy: false, error: "timeout" },
      { at: T0 + 1, type: "node_health", node: "n", detail: { healthy: false, error: "timeout" } },
    ],
    [
      { type: "model_state", at: iso(2), node: "n", model: "m", from: null, to: "loading" },
      {
        at: T0 + 2,
        type: "model_state",
        node: "n",
        model: "m",
        detail: { from: null, to: "loading" },
      },
    ],
    [
      {
        type: "load_started",
        at: iso(3),
        node: "n",
        model: "m",
        evicting: [{ node: "n", model: "old" }],
      },
      {
        at: T0 + 3,
        type: "load_started",
        node: "n",
        model: "m",
        detail: { evicting: [{ node: "n", model: "old" }] },
      },
    ],
    [
      {
        type: "swap_started",
        at: iso(5),
        node: "n",
        model: "m",
        evicting: ["old"],
        waiting: 3,
        waited_ms: 900,
      },
      {
        at: T0 + 5,
        type: "swap_started",
        node: "n",
        model: "m",
        durationMs: 900,
        detail: { evicting: ["old"], waiting: 3 },
      },
    ],
    [
      { type: "scaled_out", at: iso(6), node: "n", model: "m", reason: "demand", replicas: 2 },
      {
        at: T0 + 6,
        type: "scaled_out",
        node: "n",
        model: "m",
        detail: { reason: "demand", replicas: 2 },
      },
    ],
    [
      { type: "scaled_in", at: iso(7), node: "n", model: "m", replicas: 1 },
      { at: T0 + 7, type: "scaled_in", node: "n", model: "m", detail: { replicas: 1 } },
    ],
    [{ type: "swap_queued", at: iso(8), node: "n", model: "m", blockers: ["old"] }, undefined],
    [
      { type: "load_finished", at: iso(4), node: "n", model: "m", load_ms: 1234.5 },
      { at: T0 + 4, type: "load_finished", node: "n", model: "m", durationMs: 1234.5 },
    ],
    [
      { type: "load_failed", at: iso(5), node: "n", model: "m", error: "oom" },
      { at: T0 + 5, type: "load_failed", node: "n", model: "m", detail: { error: "oom" } },
    ],
    [
      { type: "evicted", at: iso(6), node: "n", model: "m" },
      { at: T0 + 6, type: "evicted", node: "n", model: "m" },
    ],
    [
      { type: "unloaded", at: iso(7), node: "n", model: "m" },
      { at: T0 + 7, type: "unloaded", node: "n", model: "m" },
    ],
    [
      {
        type: "load_progress",
        at: iso(8),
        node: "n",
        model: "m",
        phase: "downloading",
        bytes: 1,
        total: 2,
      },
      undefined,
    ],
    [{ type: "catalogue_reloaded", at: iso(9), models: 3, error: null }, undefined],
  ])("%o", (event, expected) => {
    expect(eventEntry(event)).toEqual(expected);
  });
});

describe("LifecycleLog", () => {
  let state: CortexState | undefined;
  let log: LifecycleLog | undefined;

  afterEach(() => {
    log?.close();
    state?.close();
    log = undefined;
    state = undefined;
    vi.useRealTimers();
  });

  const nodeRow = (name: string) =>
    state?.db
      .select()
      .from(nodes)
      .all()
      .find((row) => row.name === name);

  it("records the store's lifecycle events in model_events, written behind", () => {
    state = openState(":memory:");
    log = new LifecycleLog(state.db);
    const store = new FleetStore([]);
    log.attach(store);

    store.emit({ type: "load_started", at: iso(1), node: "gpu-1", model: "llama", evicting: [] });
    store.emit({
      type: "load_progress",
      at: iso(2),
      node: "gpu-1",
      model: "llama",
      phase: "starting",
      bytes: null,
      total: null,
    });
    store.emit({ type: "load_finished", at: iso(3), node: "gpu-1", model: "llama", load_ms: 2500 });
    store.emit({ type: "evicted", at: iso(4), node: "gpu-1", model: "qwen" });
    expect(recentEvents(state.db, 10)).toEqual([]);

    expect(log.flush()).toBe(3);
    expect(recentEvents(state.db, 10)).toEqual([
      {
        id: 3,
        at: T0 + 4,
        type: "evicted",
        node: "gpu-1",
        model: "qwen",
        durationMs: null,
        detail: null,
      },
      {
        id: 2,
        at: T0 + 3,
        type: "load_finished",
        node: "gpu-1",
        model: "llama",
        durationMs: 2500,
        detail: null,
      },
      {
        id: 1,
        at: T0 + 1,
        type: "load_started",
        node: "gpu-1",
        model: "llama",
        durationMs: null,
        detail: { evicting: [] },
      },
    ]);
  });

  it("records load_requested through record()", () => {
    state = openState(":memory:");
    log = new LifecycleLog(state.db);
    log.record({ at: T0, type: "load_requested", model: "llama", detail: { by: "api" } });
    log.flush();
    expect(recentEvents(state.db, 1)).toEqual([
      {
        id: 1,
        at: T0,
        type: "load_requested",
        node: null,
        model: "llama",
        durationMs: null,
        detail: { by: "api" },
      },
    ]);
  });

  it("saveDiscovery upserts the node row; node_health flips healthy in order", () => {
    state = openState(":memory:");
    log = new LifecycleLog(state.db, { now: () => T0 + 100 });
    const store = new FleetStore([]);
    log.attach(store);

    // Health of a node not discovered yet: recorded as an event, no row invented.
    store.emit({ type: "node_health", at: iso(50), node: "gpu-1", healthy: true, error: null });
    log.saveDiscovery("gpu-1", "http://gpu-1:7070", discovery, iso(90));
    log.flush();
    expect(nodeRow("gpu-1")).toEqual({
      name: "gpu-1",
      url: "http://gpu-1:7070",
      healthy: true,
      lastOkAt: T0 + 90,
      discovery,
      updatedAt: T0 + 100,
    });

    store.emit({
      type: "node_health",
      at: iso(200),
      node: "gpu-1",
      healthy: false,
      error: "refused",
    });
    log.flush();
    expect(nodeRow("gpu-1")).toMatchObject({
      healthy: false,
      lastOkAt: T0 + 90,
      updatedAt: T0 + 200,
    });

    store.emit({ type: "node_health", at: iso(300), node: "gpu-1", healthy: true, error: null });
    log.saveDiscovery("gpu-1", "http://10.0.0.7:7070", { ...discovery, devices: [] }, T0 + 310);
    log.flush();
    expect(nodeRow("gpu-1")).toMatchObject({
      url: "http://10.0.0.7:7070",
      healthy: true,
      lastOkAt: T0 + 310,
    });
    expect(state.db.select().from(nodes).all()).toHaveLength(1);
    expect(recentEvents(state.db, 10).map((event) => [event.type, event.detail])).toEqual([
      ["node_health", { healthy: true, error: null }],
      ["node_health", { healthy: false, error: "refused" }],
      ["node_health", { healthy: true, error: null }],
    ]);
  });

  it("flushes on the timer and once a batch is pending", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    state = openState(":memory:");
    log = new LifecycleLog(state.db, { flushIntervalMs: 500, batchSize: 10 });
    log.record({ at: T0, type: "unloaded", node: "n", model: "m" });
    vi.advanceTimersByTime(500);
    expect(recentEvents(state.db, 100)).toHaveLength(1);

    for (let i = 0; i < 10; i++) log.record({ at: T0 + i, type: "evicted", node: "n", model: "m" });
    expect(recentEvents(state.db, 100)).toHaveLength(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(recentEvents(state.db, 100)).toHaveLength(11);
  });

  it("close detaches from the store and flushes", () => {
    state = openState(":memory:");
    log = new LifecycleLog(state.db, { maxPending: 2 });
    const store = new FleetStore([]);
    log.attach(store);
    for (let i = 0; i < 5; i++)
      store.emit({ type: "unloaded", at: iso(i), node: "n", model: `m${i}` });
    expect(log.dropped).toBe(3);
    log.close();
    expect(recentEvents(state.db, 10).map((event) => event.model)).toEqual(["m4", "m3"]);
    store.emit({ type: "unloaded", at: iso(9), node: "n", model: "late" });
    expect(log.dropped).toBe(3); // detached: not even counted
  });
});
