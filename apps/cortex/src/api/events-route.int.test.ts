import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { connect, type Socket } from "node:net";
import { FleetEvent } from "@cortex/protocol";
import express from "express";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type FleetListener, FleetStore } from "../fleet/fleet-store.js";
import {
  createEventFeed,
  type EventFeed,
  type EventsHandlerOptions,
  eventsHandler,
} from "./events-route.js";

// `GET /api/events` on loopback, read by a real HTTP client.

/** A store that counts its live listeners, so a leak shows up as a growing number. */
class CountingStore extends FleetStore {
  listeners = 0;

  override subscribe(listener: FleetListener): () => void {
    this.listeners += 1;
    const unsubscribe = super.subscribe(listener);
    let active = true;
    return () => {
      if (active) this.listeners -= 1;
      active = false;
      unsubscribe();
    };
  }
}

interface Message {
  readonly id: number;
  readonly event: FleetEvent;
}

interface Stream {
  readonly response: Response;
  /** The next SSE block (comments included), without its blank line. */
  block(): Promise<string>;
  /** The next data message, skipping comments. */
  message(): Promise<Message>;
  /** Resolves once the server ended the stream. */
  ended(): Promise<void>;
  close(): void;
}

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const startServer = async (
  options: { backlog?: number; firstId?: number } & EventsHandlerOptions = {},
): Promise<{ store: CountingStore; feed: EventFeed; base: string; port: number }> => {
  const store = new CountingStore([{ name: "gpu-a", url: "http://gpu-a.lan:13131", token: "" }]);
  const feed = createEventFeed(store, options.backlog ?? 100, options.firstId ?? 1);
  const app = express();
  app.get("/api/events", eventsHandler(feed, options));
  const server: Server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  cleanups.push(async () => {
    feed.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { store, feed, base: `http://127.0.0.1:${port}`, port };
};

const open = async (url: string, headers: Record<string, string> = {}): Promise<Stream> => {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  cleanups.push(() => controller.abort());
  if (!response.body) throw new Error("no body");
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const block = async (): Promise<string> => {
    for (;;) {
      const end = buffer.indexOf("\n\n");
      if (end >= 0) {
        const found = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        return found;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("the stream ended");
      buffer += decoder.decode(value, { stream: true });
    }
  };
  return {
    response,
    block,
    message: async () => {
      for (;;) {
        const lines = (await block()).split("\n").filter((line) => !line.startsWith(":"));
        if (lines.length === 0) continue;
        expect(lines).toHaveLength(2);
        const [idLine, dataLine] = lines;
        expect(idLine).toMatch(/^id: \d+$/);
        expect(dataLine).toMatch(/^data: \{/);
        const event = FleetEvent.parse(JSON.parse(dataLine?.slice("data: ".length) ?? ""));
        return { id: Number(idLine?.slice("id: ".length)), event };
      }
    },
    ended: async () => {
      for (;;) {
        const { done } = await reader.read();
        if (done) return;
      }
    },
    close: () => controller.abort(),
  };
};

const unloaded = (model: string, at = "2025-06-15T12:00:00.000Z"): FleetEvent => ({
  type: "unloaded",
  at,
  node: "gpu-a",
  model,
});

describe("GET /api/events", () => {
  it("streams every event as an id plus a plain data message, with SSE headers", async () => {
    const { store, base } = await startServer();
    const stream = await open(`${base}/api/events`);
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(stream.response.headers.get("cache-control")).toBe("no-cache");
    expect(stream.response.headers.get("x-accel-buffering")).toBe("no");

    const loadStarted: FleetEvent = {
      type: "load_started",
      at: "2025-06-15T12:00:01.000Z",
      node: "gpu-a",
      model: "qwen3-8b",
      evicting: [{ node: "gpu-a", model: "phi-4" }],
    };
    store.emit(loadStarted);
    store.emit(unloaded("phi-4"));
    // Snapshot changes arrive through the same feed.
    store.update((s) => ({
      ...s,
      nodes: s.nodes.map((node) =>
        node.name === "gpu-a" ? { ...node, healthy: true, error: null } : node,
      ),
    }));

    expect(await stream.message()).toEqual({ id: 1, event: loadStarted });
    expect(await stream.message()).toEqual({ id: 2, event: unloaded("phi-4") });
    const health = await stream.message();
    expect(health.id).toBe(3);
    expect(health.event).toMatchObject({ type: "node_health", node: "gpu-a", healthy: true });
  });

  it("sends each event once to each of several clients over one store subscription", async () => {
    const { store, feed, base } = await startServer();
    const streams = await Promise.all([1, 2, 3].map(() => open(`${base}/api/events`)));
    expect(feed.clients).toBe(3);
    expect(store.listeners).toBe(1);

    store.emit(unloaded("a"));
    store.emit(unloaded("b"));
    store.emit(unloaded("c"));
    for (const stream of streams) {
      const ids = [
        (await stream.message()).id,
        (await stream.message()).id,
        (await stream.message()).id,
      ];
      expect(ids).toEqual([1, 2, 3]);
    }
  });

  it("replays nothing to a new client that names no position", async () => {
    const { store, base } = await startServer();
    store.emit(unloaded("before"));
    const stream = await open(`${base}/api/events`);
    store.emit(unloaded("after"));
    expect(await stream.message()).toEqual({ id: 2, event: unloaded("after") });
  });

  it.each([
    { name: "resumes after Last-Event-ID", header: "3", replayed: [4, 5] },
    {
      name: "replays the whole backlog for an id from a previous run",
      header: "999",
      replayed: [3, 4, 5],
    },
    {
      name: "replays what the backlog still holds for an old id",
      header: "0",
      replayed: [3, 4, 5],
    },
    { name: "ignores a Last-Event-ID it never issued", header: "abc", replayed: [] },
  ])("$name", async ({ header, replayed }) => {
    const { store, base } = await startServer({ backlog: 3 });
    for (const model of ["m1", "m2", "m3", "m4", "m5"]) store.emit(unloaded(model));
    const stream = await open(`${base}/api/events`, { "last-event-id": header });
    store.emit(unloaded("live"));
    const ids: number[] = [];
    for (;;) {
      const { id, event } = await stream.message();
      if (event.type === "unloaded" && event.model === "live") break;
      ids.push(id);
    }
    expect(ids).toEqual(replayed);
  });

  it("replays events at or after ?since, and Last-Event-ID wins over it", async () => {
    const { store, base } = await startServer();
    store.emit(unloaded("m1", "2025-06-15T12:00:00.000Z"));
    store.emit(unloaded("m2", "2025-06-15T12:00:05.000Z"));
    store.emit(unloaded("m3", "2025-06-15T12:00:09.000Z"));

    const since = await open(`${base}/api/events?since=2025-06-15T14:00:05%2B02:00`);
    expect((await since.message()).event).toEqual(unloaded("m2", "2025-06-15T12:00:05.000Z"));
    expect((await since.message()).event).toEqual(unloaded("m3", "2025-06-15T12:00:09.000Z"));

    const both = await open(`${base}/api/events?since=2025-06-15T12:00:00Z`, {
      "last-event-id": "2",
    });
    expect(await both.message()).toMatchObject({ id: 3 });
  });

  it.each(["yesterday", "2025-06-15T12:00:00"])("answers 400 for since=%s", async (value) => {
    const { feed, base } = await startServer();
    const response = await fetch(`${base}/api/events?since=${value}`);
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; param: string } };
    expect(body.error).toMatchObject({ code: "invalid_request_error", param: "since" });
    expect(feed.clients).toBe(0);
  });

  it("sends a keep-alive comment every heartbeat", async () => {
    const { base } = await startServer({ heartbeatMs: 20 });
    const stream = await open(`${base}/api/events`);
    expect(await stream.block()).toBe(": keep-alive");
    expect(await stream.block()).toBe(": keep-alive");
  });

  it("unsubscribes every client that disconnects, so nothing grows", async () => {
    const { store, feed, base } = await startServer({ heartbeatMs: 10 });
    for (let round = 0; round < 3; round += 1) {
      const streams = await Promise.all([1, 2, 3, 4, 5].map(() => open(`${base}/api/events`)));
      expect(feed.clients).toBe(5);
      for (const stream of streams) stream.close();
      await vi.waitFor(() => expect(feed.clients).toBe(0));
      expect(store.listeners).toBe(1);
    }
    // Events after the disconnects go nowhere and break nothing.
    store.emit(unloaded("after"));
    expect(feed.lastId).toBe(1);
  });

  it("disconnects a client that stops reading instead of buffering without bound", async () => {
    const { store, feed, base, port } = await startServer();

    // A client that keeps reading, and one that sends its request and never reads again.
    const healthy = await open(`${base}/api/events`);
    let healthyMessages = 0;
    const draining = (async () => {
      for (;;) {
        await healthy.message();
        healthyMessages += 1;
      }
    })().catch(() => {});
    const slow: Socket = connect(port, "127.0.0.1");
    cleanups.push(() => {
      slow.destroy();
    });
    await new Promise<void>((resolve) => slow.once("connect", () => resolve()));
    slow.write("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    slow.pause();
    await vi.waitFor(() => expect(feed.clients).toBe(2));

    const error = "x".repeat(32 * 1024);
    let sent = 0;
    // Bounded: the kernel's socket buffers plus 1 MB fill long before 64 MB.
    while (feed.clients === 2 && sent < 2_000) {
      store.emit({
        type: "load_failed",
        at: "2025-06-15T12:00:00.000Z",
        node: "gpu-a",
        model: "m",
        error,
      });
      sent += 1;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(feed.clients).toBe(1);
    expect(store.listeners).toBe(1);
    // The reading client got everything.
    await vi.waitFor(() => expect(healthyMessages).toBe(sent));
    healthy.close();
    await draining;
  });

  it("ends every stream and leaves the store when the feed closes", async () => {
    const { store, feed, base } = await startServer();
    const stream = await open(`${base}/api/events`);
    feed.close();
    await stream.ended();
    expect(store.listeners).toBe(0);
    expect(feed.clients).toBe(0);
    // A client arriving after shutdown gets an empty stream, not a hanging one.
    const late = await open(`${base}/api/events`);
    await late.ended();
  });
});

describe("createEventFeed", () => {
  it("numbers events from the start time in microseconds by default, so ids grow across restarts", () => {
    const before = Date.now() * 1000;
    const feed = createEventFeed(new FleetStore([]));
    expect(feed.lastId).toBeGreaterThanOrEqual(before - 1);
    feed.close();
  });

  it("keeps no backlog when asked for none", () => {
    const store = new FleetStore([]);
    const feed = createEventFeed(store, 0, 1);
    store.emit(unloaded("m"));
    expect(feed.replayAfter(0)).toEqual([]);
    expect(feed.lastId).toBe(1);
    feed.close();
  });

  it("rejects a negative backlog", () => {
    expect(() => createEventFeed(new FleetStore([]), -1)).toThrow(RangeError);
  });
});
