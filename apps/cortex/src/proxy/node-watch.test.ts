import type { FleetEvent, FleetSnapshot } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { unknownNode } from "../fleet/fleet-store.js";
import { NodeUnhealthyError, NodeWatch } from "./node-watch.js";

// The watch over requests in flight per node, with fake timers and hand-made health events: a
// request on a node that turned unhealthy is given up once it went the grace without a byte.

const GRACE = 2000;

const snapshotOf = (healthy: Record<string, boolean>): FleetSnapshot => ({
  taken_at: new Date(0).toISOString(),
  nodes: Object.entries(healthy).map(([name, up]) => ({
    ...unknownNode({ name, url: `http://${name}:13131` }),
    healthy: up,
    error: up ? null : "connection refused",
  })),
});

const setup = (healthy: Record<string, boolean> = { a: true, b: true }) => {
  const listeners = new Set<(event: FleetEvent) => void>();
  const watch = new NodeWatch({
    snapshot: snapshotOf(healthy),
    subscribe: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    graceMs: GRACE,
  });
  const health = (node: string, up: boolean, error: string | null = null) => {
    for (const listener of listeners)
      listener({ type: "node_health", at: new Date().toISOString(), node, healthy: up, error });
  };
  return { watch, health, listeners };
};

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe("NodeWatch", () => {
  it("gives up a silent request the grace after its node turns unhealthy, saying why", () => {
    const { watch, health } = setup();
    const request = watch.watch("a");
    const other = watch.watch("b");
    vi.advanceTimersByTime(60_000);
    expect(request.signal.aborted).toBe(false);
    health("a", false, "suspect: a request failed (ECONNREFUSED)");
    vi.advanceTimersByTime(GRACE - 1);
    expect(request.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(request.signal.aborted).toBe(true);
    expect(request.signal.reason).toBeInstanceOf(NodeUnhealthyError);
    expect((request.signal.reason as Error).message).toBe(
      "node a became unhealthy (suspect: a request failed (ECONNREFUSED))",
    );
    expect(other.signal.aborted).toBe(false);
  });

  it("keeps a request whose neuron still sends bytes, and gives it up once they stop", () => {
    const { watch, health } = setup();
    const stream = watch.watch("a");
    health("a", false);
    for (let i = 0; i < 5; i += 1) {
      vi.advanceTimersByTime(GRACE / 2);
      stream.activity();
    }
    vi.advanceTimersByTime(GRACE);
    expect(stream.signal.aborted).toBe(false);
    // A whole grace without a byte.
    vi.advanceTimersByTime(GRACE);
    expect(stream.signal.aborted).toBe(true);
  });

  it("gives up nothing when the node is healthy again within the grace", () => {
    const { watch, health } = setup();
    const request = watch.watch("a");
    health("a", false);
    vi.advanceTimersByTime(GRACE - 500);
    health("a", true);
    vi.advanceTimersByTime(10 * GRACE);
    expect(request.signal.aborted).toBe(false);
    // A second flip arms it again, from then.
    health("a", false);
    vi.advanceTimersByTime(GRACE);
    expect(request.signal.aborted).toBe(true);
  });

  it("arms a request that starts on a node already unhealthy (from the snapshot or an event)", () => {
    const { watch, health } = setup({ a: false, b: true });
    const onA = watch.watch("a");
    health("b", false);
    const onB = watch.watch("b");
    vi.advanceTimersByTime(GRACE);
    expect(onA.signal.aborted).toBe(true);
    expect(onB.signal.aborted).toBe(true);
  });

  it("forgets a closed request, and stops listening when closed", () => {
    const { watch, health, listeners } = setup();
    const request = watch.watch("a");
    const open = watch.watch("a");
    expect(watch.count("a")).toBe(2);
    request.close();
    request.close();
    expect(watch.count("a")).toBe(1);
    health("a", false);
    vi.advanceTimersByTime(GRACE);
    expect(request.signal.aborted).toBe(false);
    expect(open.signal.aborted).toBe(true);
    open.close();
    expect(watch.count("a")).toBe(0);
    watch.close();
    expect(listeners.size).toBe(0);
  });
});
