import type { NeuronModel } from "@cortex/protocol";
import { createSseParser } from "@cortex/protocol/sse";
import { neuronModel } from "@cortex/testkit";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { NeuronError } from "../errors.js";
import { silent } from "../models/model-manager.fixtures.js";
import type { ModelChange, ModelWatcher } from "../models/model-manager.js";
import { EventHub, type EventSink } from "./events.js";

// The event hub on fake models and fake sinks, with fake timers: what each stream receives,
// when, and which streams are refused or cut.

const fakeModels = (initial: readonly NeuronModel[] = []) => {
  const models = new Map(initial.map((model) => [model.id, model]));
  let watcher: ModelWatcher | null = null;
  return {
    list: () => [...models.values()],
    describe: (id: string) => models.get(id),
    watch: (next: ModelWatcher) => {
      watcher = next;
      return () => {
        watcher = null;
      };
    },
    get watched() {
      return watcher !== null;
    },
    /** A status change (or a model forgotten), as the registry announces it. */
    change: (change: ModelChange) => {
      if ("removed" in change) models.delete(change.id);
      else models.set(change.id, change);
      watcher?.changed(change);
    },
    /** The model's counts changed, as its admission announces it. */
    work: (id: string, fields: Partial<NeuronModel>) => {
      const model = models.get(id);
      if (model) models.set(id, { ...model, ...fields });
      watcher?.work(id);
    },
  };
};

interface Received {
  readonly id: string | null;
  readonly event: string;
  readonly data: unknown;
}

const fakeSink = (options: { reading?: boolean } = {}) => {
  const parser = createSseParser();
  const received: Received[] = [];
  let buffered = 0;
  const sink: EventSink & {
    received: Received[];
    opened: number;
    cuts: number;
    ends: number;
  } = {
    received,
    opened: 0,
    cuts: 0,
    ends: 0,
    open: () => {
      sink.opened += 1;
    },
    write: (frame) => {
      for (const message of parser.push(frame))
        if (message.kind === "message")
          received.push({ id: message.id, event: message.event, data: JSON.parse(message.data) });
      if (options.reading === false) {
        buffered += frame.length;
        return false;
      }
      return true;
    },
    get buffered() {
      return buffered;
    },
    cut: () => {
      sink.cuts += 1;
    },
    end: () => {
      sink.ends += 1;
    },
  };
  return sink;
};

const A = neuronModel("a", { status: "loaded" });

beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse("2025-06-15T12:00:00Z") });
});

afterEach(() => {
  vi.useRealTimers();
});

describe("EventHub", () => {
  it("opens a stream with a snapshot of every model, then sends each status change at once", () => {
    const models = fakeModels([A]);
    const hub = new EventHub({ models, log: silent });
    const sink = fakeSink();
    hub.subscribe(sink);
    expect(sink.opened).toBe(1);
    expect(sink.received).toEqual([{ id: "1", event: "snapshot", data: [A] }]);

    const loading = neuronModel("b", { status: "loading" });
    models.change(loading);
    models.change({ ...loading, status: "loaded" });
    models.change({ id: "a", removed: true });
    expect(sink.received.slice(1)).toEqual([
      { id: "2", event: "model", data: loading },
      { id: "3", event: "model", data: { ...loading, status: "loaded" } },
      { id: "4", event: "model", data: { id: "a", removed: true } },
    ]);
  });

  it("coalesces in-flight changes to one event per model per 100 ms, the last state winning", () => {
    const models = fakeModels([A, neuronModel("b", { status: "loaded" })]);
    const hub = new EventHub({ models, log: silent });
    const sink = fakeSink();
    hub.subscribe(sink);
    const counts = () =>
      sink.received
        .filter((message) => message.event === "model")
        .map((message) => {
          const model = message.data as NeuronModel;
          return `${model.id}:${model.in_flight}/${model.queued}`;
        });

    // The first change leaves at once; the next ones within 100 ms wait for one event.
    models.work("a", { in_flight: 1 });
    models.work("a", { in_flight: 2 });
    models.work("a", { in_flight: 3, queued: 1 });
    // Another model has its own window.
    models.work("b", { in_flight: 1 });
    expect(counts()).toEqual(["a:1/0", "b:1/0"]);
    vi.advanceTimersByTime(99);
    expect(counts()).toEqual(["a:1/0", "b:1/0"]);
    vi.advanceTimersByTime(1);
    expect(counts()).toEqual(["a:1/0", "b:1/0", "a:3/1"]);
    // Nothing changed since: nothing more is sent.
    vi.advanceTimersByTime(500);
    expect(counts()).toEqual(["a:1/0", "b:1/0", "a:3/1"]);
    // Past the window a change leaves at once again.
    models.work("a", { in_flight: 0, queued: 0 });
    expect(counts()).toEqual(["a:1/0", "b:1/0", "a:3/1", "a:0/0"]);
  });

  it("sends nothing for in-flight changes of a model forgotten before its event left", () => {
    const models = fakeModels([A]);
    const hub = new EventHub({ models, log: silent });
    const sink = fakeSink();
    hub.subscribe(sink);
    models.work("a", { in_flight: 1 });
    models.work("a", { in_flight: 0 });
    models.change({ id: "a", removed: true });
    vi.advanceTimersByTime(1000);
    expect(sink.received.map((message) => message.event)).toEqual([
      "snapshot",
      "model",
      "model",
      "heartbeat",
    ]);
    expect(sink.received[2]?.data).toEqual({ id: "a", removed: true });
  });

  it("sends a heartbeat every second whose seq is its own id", () => {
    const hub = new EventHub({ models: fakeModels(), log: silent });
    const sink = fakeSink();
    hub.subscribe(sink);
    vi.advanceTimersByTime(999);
    expect(sink.received).toHaveLength(1);
    vi.advanceTimersByTime(1);
    vi.advanceTimersByTime(1000);
    expect(sink.received.slice(1)).toEqual([
      { id: "2", event: "heartbeat", data: { at: "2025-06-15T12:00:01.000Z", seq: 2 } },
      { id: "3", event: "heartbeat", data: { at: "2025-06-15T12:00:02.000Z", seq: 3 } },
    ]);
  });

  it("watches and times nothing while nobody listens", () => {
    const models = fakeModels([A]);
    const hub = new EventHub({ models, log: silent });
    expect(models.watched).toBe(false);
    const first = hub.subscribe(fakeSink());
    const second = hub.subscribe(fakeSink());
    expect(models.watched).toBe(true);
    models.work("a", { in_flight: 1 });
    models.work("a", { in_flight: 2 });
    first();
    expect(models.watched).toBe(true);
    second();
    expect(models.watched).toBe(false);
    expect(hub.subscribers).toBe(0);
    // The heartbeat and the pending in-flight event are gone with the last stream.
    expect(vi.getTimerCount()).toBe(0);
  });

  it("refuses a stream past its bound with 503 before writing anything, and takes one again once a stream ends", () => {
    const hub = new EventHub({ models: fakeModels(), log: silent, maxSubscribers: 2 });
    const first = hub.subscribe(fakeSink());
    hub.subscribe(fakeSink());
    const refused = fakeSink();
    let error: unknown;
    try {
      hub.subscribe(refused);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(NeuronError);
    expect((error as NeuronError).code).toBe("service_unavailable");
    expect((error as NeuronError).retryAfterS).toBe(5);
    expect(refused.opened).toBe(0);
    expect(refused.received).toEqual([]);
    first();
    const next = fakeSink();
    hub.subscribe(next);
    expect(next.received.map((message) => message.event)).toEqual(["snapshot"]);
  });

  it("cuts a subscriber that stops reading once it holds more than the bound, and keeps the others", () => {
    const models = fakeModels([A]);
    const hub = new EventHub({ models, log: silent, maxBufferedBytes: 2000 });
    const slow = fakeSink({ reading: false });
    const fast = fakeSink();
    hub.subscribe(slow);
    hub.subscribe(fast);
    for (let i = 0; i < 20 && slow.cuts === 0; i += 1)
      models.change({ ...A, error: `change ${i}`.padEnd(200, ".") });
    expect(slow.cuts).toBe(1);
    expect(hub.subscribers).toBe(1);
    const sent = slow.received.length;
    models.change({ ...A, status: "unloaded" });
    expect(slow.received).toHaveLength(sent);
    expect(fast.received.at(-1)?.data).toMatchObject({ id: "a", status: "unloaded" });
  });

  it("ends every stream on close and refuses new ones", () => {
    const models = fakeModels();
    const hub = new EventHub({ models, log: silent });
    const sinks = [fakeSink(), fakeSink()];
    for (const sink of sinks) hub.subscribe(sink);
    hub.close();
    hub.close();
    expect(sinks.map((sink) => sink.ends)).toEqual([1, 1]);
    expect(hub.subscribers).toBe(0);
    expect(models.watched).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    expect(() => hub.subscribe(fakeSink())).toThrow(/shutting down/);
  });
});
