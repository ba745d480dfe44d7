import { neuronModel } from "@cortex/testkit";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Log } from "../log.js";
import type { EventStreamHandlers } from "../neurons/event-stream.js";
import { FleetStore } from "./fleet-store.js";
import { LIVE_WATCHDOG_MS, LiveEvents } from "./live-events.js";
import type { LiveNews } from "./live-news.js";
import { targetsOf } from "./poller.fixtures.js";

// LiveEvents on fake streams and a real store, with fake timers: whom it subscribes to, what
// it passes on, and what a silent, dropped, refused or missing stream does.

interface FakeStream {
  readonly name: string;
  readonly handlers: EventStreamHandlers;
  closed: boolean;
}

const logged = () => {
  const lines: string[] = [];
  const log: Log = {
    debug: () => {},
    info: (_o, message) => lines.push(`info ${message}`),
    warn: (_o, message) => lines.push(`warn ${message}`),
    error: (_o, message) => lines.push(`error ${message}`),
  };
  return { lines, log };
};

const setup = (names: readonly string[] = ["a", "b"]) => {
  const store = new FleetStore(targetsOf(names));
  const streams: FakeStream[] = [];
  const news: { node: string; news: LiveNews }[] = [];
  const suspects: { node: string; why: string }[] = [];
  const setHealthy = (name: string, healthy: boolean) =>
    store.update((current) => ({
      ...current,
      nodes: current.nodes.map((node) => (node.name === name ? { ...node, healthy } : node)),
    }));
  const { lines, log } = logged();
  const live = new LiveEvents({
    store,
    client: (name) => ({
      events: (handlers) => {
        const stream: FakeStream = { name, handlers, closed: false };
        streams.push(stream);
        return {
          close: () => {
            stream.closed = true;
          },
        };
      },
    }),
    sink: {
      news: (node, item) => news.push({ node, news: item }),
      // As the poller does: a healthy node becomes unhealthy until a later poll.
      suspect: (node, why) => {
        suspects.push({ node, why });
        setHealthy(node, false);
      },
    },
    log,
  });
  const open = (name: string) => streams.filter((s) => s.name === name && !s.closed);
  const last = (name: string) => {
    const found = streams.filter((s) => s.name === name).at(-1);
    if (!found) throw new Error(`no stream to ${name}`);
    return found;
  };
  /** The stream's end as the transport reports it (connection closed, 404, …). */
  const end = (name: string, how: Parameters<EventStreamHandlers["ended"]>[0]) => {
    const stream = last(name);
    stream.closed = true;
    stream.handlers.ended(how);
  };
  return { store, live, streams, news, suspects, setHealthy, open, last, end, lines };
};

let current: ReturnType<typeof setup> | null = null;
const started = (names?: readonly string[]) => {
  current = setup(names);
  current.live.start();
  return current;
};

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});

afterEach(() => {
  current?.live.stop();
  current = null;
  vi.useRealTimers();
});

const A = neuronModel("m1", { status: "loaded" });

describe("LiveEvents", () => {
  it("closes a node's stream when it leaves the fleet or moves to another URL", () => {
    const { store, suspects, setHealthy, open, streams } = started();
    setHealthy("a", true);
    setHealthy("b", true);
    store.setNode({ name: "a", url: "http://a-moved:13131" });
    expect(open("a")).toHaveLength(0);
    setHealthy("a", true);
    expect(open("a")).toHaveLength(1);
    expect(streams.filter((s) => s.name === "a")).toHaveLength(2);
    store.removeNode("b");
    expect(open("b")).toHaveLength(0);
    expect(suspects).toEqual([]);
  });

  it("subscribes to each node once it is healthy, and to no other", () => {
    const { streams, setHealthy, open } = started();
    expect(streams).toHaveLength(0);
    setHealthy("a", true);
    expect(open("a")).toHaveLength(1);
    expect(open("b")).toHaveLength(0);
    // Later replacements do not open a second stream.
    setHealthy("b", true);
    setHealthy("a", true);
    expect(open("a")).toHaveLength(1);
    expect(open("b")).toHaveLength(1);
  });

  it("passes snapshots and model events on as news, and heartbeats as nothing", () => {
    const { setHealthy, last, news, suspects } = started();
    setHealthy("a", true);
    const { handlers } = last("a");
    handlers.opened();
    handlers.message("snapshot", JSON.stringify([A]));
    handlers.message("model", JSON.stringify({ ...A, status: "unloaded", extra: 1 }));
    handlers.message("model", JSON.stringify({ id: "m1", removed: true }));
    handlers.message("heartbeat", JSON.stringify({ at: new Date().toISOString(), seq: 4 }));
    handlers.message("something-newer", "{}");
    expect(news).toEqual([
      { node: "a", news: { kind: "snapshot", models: [A] } },
      { node: "a", news: { kind: "model", model: { ...A, status: "unloaded" } } },
      { node: "a", news: { kind: "removed", id: "m1" } },
    ]);
    expect(suspects).toEqual([]);
  });

  it("drops a stream silent for LIVE_WATCHDOG_MS, makes its node suspect, and asks again after a healthy poll", () => {
    const { setHealthy, last, open, suspects } = started();
    setHealthy("a", true);
    const first = last("a");
    first.handlers.opened();
    // Heartbeats keep it: bytes every second.
    for (let i = 0; i < 5; i += 1) {
      vi.advanceTimersByTime(1000);
      first.handlers.alive();
    }
    expect(suspects).toEqual([]);
    vi.advanceTimersByTime(LIVE_WATCHDOG_MS - 1);
    expect(suspects).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(first.closed).toBe(true);
    expect(suspects).toEqual([{ node: "a", why: "event stream: no event for 1500 ms" }]);
    // Unhealthy now: nothing until a poll answers.
    vi.advanceTimersByTime(10_000);
    expect(open("a")).toHaveLength(0);
    setHealthy("a", true);
    expect(open("a")).toHaveLength(1);
  });

  it("counts the wait for the first byte against the watchdog too", () => {
    const { setHealthy, last, suspects } = started();
    setHealthy("a", true);
    vi.advanceTimersByTime(LIVE_WATCHDOG_MS);
    expect(last("a").closed).toBe(true);
    expect(suspects).toHaveLength(1);
  });

  it("makes the node suspect when its stream closes, and backs off when it keeps dropping", () => {
    const { setHealthy, end, open, suspects, streams } = started();
    const dropAndHeal = () => {
      end("a", { kind: "dropped", why: "connection reset" });
      setHealthy("a", true);
    };
    setHealthy("a", true);
    dropAndHeal();
    // The first drop: asked again as soon as a poll says it is healthy.
    vi.advanceTimersByTime(0);
    setHealthy("a", true);
    expect(open("a")).toHaveLength(1);
    expect(suspects.at(-1)).toEqual({ node: "a", why: "event stream: connection reset" });
    // The second drop in a row waits 1 s, the third 2 s.
    dropAndHeal();
    expect(open("a")).toHaveLength(0);
    vi.advanceTimersByTime(999);
    expect(open("a")).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(open("a")).toHaveLength(1);
    dropAndHeal();
    vi.advanceTimersByTime(1999);
    expect(open("a")).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(open("a")).toHaveLength(1);
    expect(suspects).toHaveLength(3);
    expect(streams).toHaveLength(4);
  });

  it("starts the backoff afresh after a stream that stayed up", () => {
    const { setHealthy, last, end, open } = started();
    setHealthy("a", true);
    for (const _ of [1, 2]) {
      end("a", { kind: "dropped", why: "reset" });
      setHealthy("a", true);
      vi.advanceTimersByTime(5000);
      setHealthy("a", true);
    }
    // A long-lived stream (heartbeats all along), then a drop: asked again at once.
    const stable = last("a");
    for (let i = 0; i < 40; i += 1) {
      vi.advanceTimersByTime(1000);
      stable.handlers.alive();
    }
    end("a", { kind: "dropped", why: "reset" });
    vi.advanceTimersByTime(0);
    setHealthy("a", true);
    expect(open("a")).toHaveLength(1);
  });

  it("leaves a neuron without /events to polling, says so once, and asks again after it was away", () => {
    const { setHealthy, end, open, streams, suspects, lines } = started();
    setHealthy("a", true);
    end("a", { kind: "absent" });
    vi.advanceTimersByTime(60_000);
    setHealthy("a", true);
    expect(open("a")).toHaveLength(0);
    expect(streams).toHaveLength(1);
    expect(suspects).toEqual([]);
    // Down and up again (perhaps upgraded): asked once more, and not logged twice.
    setHealthy("a", false);
    setHealthy("a", true);
    expect(streams).toHaveLength(2);
    end("a", { kind: "absent" });
    expect(lines.filter((line) => line.includes("no /events"))).toHaveLength(1);
  });

  it("does not suspect a node that refused its stream, and asks again after the backoff", () => {
    const { setHealthy, end, open, suspects } = started();
    setHealthy("a", true);
    end("a", { kind: "refused", status: 503 });
    expect(suspects).toEqual([]);
    vi.advanceTimersByTime(0);
    expect(open("a")).toHaveLength(1);
    end("a", { kind: "refused", status: 503 });
    vi.advanceTimersByTime(999);
    expect(open("a")).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(open("a")).toHaveLength(1);
  });

  it("drops a stream that sends what it cannot read, without making the node suspect", () => {
    const { setHealthy, last, news, suspects, lines } = started();
    setHealthy("a", true);
    const stream = last("a");
    stream.handlers.message("model", "{not json");
    expect(stream.closed).toBe(true);
    stream.handlers.message("model", JSON.stringify({ id: "../etc", status: "loaded" }));
    expect(news).toEqual([]);
    expect(suspects).toEqual([]);
    expect(lines).toContain("warn neuron sent an event cortex cannot read; dropped its stream");
  });

  it("closes the stream of a node that leaves the snapshot", () => {
    const { store, setHealthy, last, suspects } = started();
    setHealthy("a", true);
    store.update((snapshot) => ({
      ...snapshot,
      nodes: snapshot.nodes.filter((node) => node.name !== "a"),
    }));
    expect(last("a").closed).toBe(true);
    vi.advanceTimersByTime(10_000);
    expect(suspects).toEqual([]);
  });

  it("closes every stream on stop without making any node suspect, and subscribes no more", () => {
    const { live, setHealthy, open, suspects, streams } = started();
    setHealthy("a", true);
    setHealthy("b", true);
    expect(live.streams).toBe(2);
    live.stop();
    expect(open("a")).toHaveLength(0);
    expect(open("b")).toHaveLength(0);
    vi.advanceTimersByTime(10_000);
    setHealthy("a", false);
    setHealthy("a", true);
    expect(streams).toHaveLength(2);
    expect(suspects).toEqual([]);
  });
});
