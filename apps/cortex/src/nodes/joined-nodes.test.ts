import type { FleetEvent } from "@cortex/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { FleetStore } from "../fleet/fleet-store.js";
import { type MemberClient, Membership } from "../fleet/membership.js";
import { silentLog } from "../log.js";
import { type CortexState, JoinedTable, openState } from "../state/index.js";
import { JoinedNodes, StaticNodeError } from "./joined-nodes.js";

// Joined nodes over a real (in-memory) state database, the membership and the fleet store,
// with a recording poller: what is stored, what the fleet holds, what gets polled.

class FakeClient implements MemberClient {
  closed = false;
  constructor(
    readonly url: string,
    readonly token: string,
  ) {}
  close(): void {
    this.closed = true;
  }
}

let state: CortexState | undefined;
afterEach(() => {
  state?.close();
  state = undefined;
});

const setup = (now = () => 1_000) => {
  state = openState(":memory:");
  const table = new JoinedTable(state.db);
  const store = new FleetStore([]);
  const members = new Membership<FakeClient>({
    store,
    connect: (target) => new FakeClient(target.url, target.token),
    log: silentLog,
    retireMs: 0,
  });
  const polled: string[] = [];
  const targets = new Map<string, FakeClient>();
  members.attach({
    addTarget: (name, client) => targets.set(name, client),
    removeTarget: (name) => targets.delete(name),
    pollNow: async (name) => {
      polled.push(name ?? "*");
    },
  });
  const forgotten: string[] = [];
  const events: FleetEvent[] = [];
  const joined = new JoinedNodes({
    store: table,
    members,
    forgetDrain: (name) => forgotten.push(name),
    emit: (event) => events.push(event),
    log: silentLog,
    now,
  });
  return { table, store, members, polled, targets, forgotten, events, joined };
};

describe("JoinedNodes", () => {
  it("stores a join, puts the node in the fleet and polls it at once", () => {
    const { table, store, members, polled, targets, events, joined } = setup();
    expect(joined.join({ name: "gpu-1", url: "http://h1:13131", token: "t1" })).toEqual({
      name: "gpu-1",
      polled: true,
    });
    expect(table.read()).toEqual([
      { name: "gpu-1", url: "http://h1:13131", token: "t1", joinedAtMs: 1000, lastJoinAtMs: 1000 },
    ]);
    expect(store.snapshot.nodes.map((node) => [node.name, node.url])).toEqual([
      ["gpu-1", "http://h1:13131"],
    ]);
    expect(members.origin("gpu-1")).toBe("joined");
    expect(members.token("gpu-1")).toBe("t1");
    expect(targets.get("gpu-1")?.url).toBe("http://h1:13131");
    expect(polled).toEqual(["gpu-1"]);
    expect(events).toEqual([
      {
        type: "node_joined",
        at: new Date(1000).toISOString(),
        node: "gpu-1",
        url: "http://h1:13131",
      },
    ]);
  });

  it("updates on a rejoin: a new URL gets a new client and an unknown node, the first join time stays", () => {
    let now = 1000;
    const { table, store, members, targets, joined } = setup(() => now);
    joined.join({ name: "gpu-1", url: "http://h1:13131", token: "t1" });
    const first = members.client("gpu-1");
    now = 5000;
    joined.join({ name: "gpu-1", url: "http://h2:13131", token: "t2" });
    expect(table.read()).toEqual([
      { name: "gpu-1", url: "http://h2:13131", token: "t2", joinedAtMs: 1000, lastJoinAtMs: 5000 },
    ]);
    expect(store.snapshot.nodes).toHaveLength(1);
    expect(store.snapshot.nodes[0]?.url).toBe("http://h2:13131");
    expect(members.client("gpu-1")).not.toBe(first);
    expect(targets.get("gpu-1")).toBe(members.client("gpu-1"));
    // The same URL and token again keeps the client.
    const second = members.client("gpu-1");
    joined.join({ name: "gpu-1", url: "http://h2:13131", token: "t2" });
    expect(members.client("gpu-1")).toBe(second);
  });

  it("refuses a static node's name, to join and to remove", () => {
    const { members, joined, table } = setup();
    members.set({ name: "fixed", url: "http://f:1", token: "" }, "static");
    expect(() => joined.join({ name: "fixed", url: "http://x:1", token: "" })).toThrow(
      StaticNodeError,
    );
    expect(() => joined.remove("fixed")).toThrow(/remove it from cortex.yaml/);
    expect(table.read()).toEqual([]);
    expect(members.client("fixed").url).toBe("http://f:1");
  });

  it("removes a joined node: row, fleet, poller, drain, and an event; 404 after", () => {
    const { table, store, members, targets, forgotten, events, joined } = setup();
    joined.join({ name: "gpu-1", url: "http://h1:13131", token: "t1" });
    const client = members.client("gpu-1");
    expect(joined.remove("gpu-1")).toEqual({ name: "gpu-1", removed: true });
    expect(table.read()).toEqual([]);
    expect(store.snapshot.nodes).toEqual([]);
    expect(targets.has("gpu-1")).toBe(false);
    expect(forgotten).toEqual(["gpu-1"]);
    expect(events.at(-1)).toEqual({ type: "node_removed", at: expect.any(String), node: "gpu-1" });
    expect(() => members.client("gpu-1")).toThrow(/not in the fleet/);
    expect(() => joined.remove("gpu-1")).toThrow(/not a joined node/);
    // Retired, not cut: closed by its timer (0 ms here) or at close.
    members.close();
    expect(client.closed).toBe(true);
  });

  it("restores stored nodes at start, skipping a name cortex.yaml now has", () => {
    const first = setup();
    first.joined.join({ name: "gpu-1", url: "http://h1:1", token: "t1" });
    first.joined.join({ name: "fixed", url: "http://h2:1", token: "t2" });
    const db = state;
    state = undefined;
    const members = new Membership<FakeClient>({
      store: new FleetStore([]),
      connect: (target) => new FakeClient(target.url, target.token),
      log: silentLog,
    });
    members.set({ name: "fixed", url: "http://f:1", token: "" }, "static");
    const again = new JoinedNodes({
      store: new JoinedTable(db?.db ?? openState(":memory:").db),
      members,
      forgetDrain: () => {},
      emit: () => {},
      log: silentLog,
    });
    expect(again.restore()).toBe(1);
    expect(members.list()).toEqual([
      { name: "fixed", origin: "static" },
      { name: "gpu-1", origin: "joined" },
    ]);
    expect(members.token("gpu-1")).toBe("t1");
    members.close();
    db?.close();
  });
});
