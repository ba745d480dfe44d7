import { startEventStream } from "@cortex/http-kit";
import {
  type HeartbeatEvent,
  NEURON_EVENT_COALESCE_MS,
  NEURON_HEARTBEAT_MS,
  type NeuronEventName,
} from "@cortex/protocol";
import type { RequestHandler } from "express";
import { NeuronError } from "../errors.js";
import type { Log, ModelManager } from "../models/model-manager.js";

// `GET /events`: the node's live state as server-sent events (docs/contract.md "Live state").
// A new stream gets a `snapshot` of every model, then a `model` event at each status change and
// each forgotten model (at once) and for in-flight or queued counts (at most one per model per
// NEURON_EVENT_COALESCE_MS, the last state winning), and a `heartbeat` every NEURON_HEARTBEAT_MS.

/** Streams one neuron serves at once; the next is refused with 503 until one ends. */
export const MAX_EVENT_SUBSCRIBERS = 64;

/** Unsent bytes a stream may hold: a subscriber that stops reading past this is cut. */
export const MAX_EVENT_BUFFERED_BYTES = 1024 * 1024;

/** What the hub needs of the models: the ModelManager, or a fake in tests. */
export type WatchedModels = Pick<ModelManager, "list" | "describe" | "watch">;

/** One subscriber's output (an HTTP response in the server, a fake in tests). */
export interface EventSink {
  /** Sends the stream's head; called once, just before the first event. */
  open(): void;
  /** Queues `frame`; false when it had to be buffered (the peer is not keeping up). */
  write(frame: string): boolean;
  /** Bytes written and not yet taken by the peer. */
  readonly buffered: number;
  /** Ends the stream at once, dropping what is buffered (a subscriber that stopped reading). */
  cut(): void;
  /** Ends the stream after what is buffered (the neuron is stopping). */
  end(): void;
}

/** What the hub watches and its bounds (the defaults above; tests shorten them). */
export interface EventHubOptions {
  readonly models: WatchedModels;
  readonly log: Log;
  readonly maxSubscribers?: number;
  readonly maxBufferedBytes?: number;
  readonly heartbeatMs?: number;
  readonly coalesceMs?: number;
  readonly now?: () => number;
}

/** Per model: when its last in-flight event left, and the one waiting to leave. */
interface WorkSlot {
  sentMs: number;
  timer: ReturnType<typeof setTimeout> | null;
}

/**
 * The node's event streams: one watcher on the models and one heartbeat timer while anyone
 * listens (nothing at all otherwise), every event serialized once and written to each stream.
 */
export class EventHub {
  readonly #models: WatchedModels;
  readonly #log: Log;
  readonly #maxSubscribers: number;
  readonly #maxBufferedBytes: number;
  readonly #heartbeatMs: number;
  readonly #coalesceMs: number;
  readonly #now: () => number;
  readonly #sinks = new Set<EventSink>();
  readonly #work = new Map<string, WorkSlot>();
  #lastId = 0;
  #unwatch: (() => void) | null = null;
  #heartbeat: ReturnType<typeof setInterval> | null = null;
  #closed = false;

  constructor(options: EventHubOptions) {
    this.#models = options.models;
    this.#log = options.log;
    this.#maxSubscribers = options.maxSubscribers ?? MAX_EVENT_SUBSCRIBERS;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? MAX_EVENT_BUFFERED_BYTES;
    this.#heartbeatMs = options.heartbeatMs ?? NEURON_HEARTBEAT_MS;
    this.#coalesceMs = options.coalesceMs ?? NEURON_EVENT_COALESCE_MS;
    this.#now = options.now ?? Date.now;
  }

  /** Streams open now. */
  get subscribers(): number {
    return this.#sinks.size;
  }

  /**
   * Opens `sink` with a `snapshot` and streams every change to it from then on; the returned
   * function ends the subscription (the peer went away). 503 when full or stopping, before
   * anything is written.
   */
  subscribe(sink: EventSink): () => void {
    if (this.#closed)
      throw new NeuronError("service_unavailable", "the neuron is shutting down", {
        retryAfterS: 5,
      });
    if (this.#sinks.size >= this.#maxSubscribers)
      throw new NeuronError(
        "service_unavailable",
        `this neuron already serves ${this.#maxSubscribers} event streams; try again later`,
        { retryAfterS: 5 },
      );
    // Listed first: pruning expired failures announces them to the streams already open.
    const snapshot = this.#models.list();
    this.#sinks.add(sink);
    if (this.#sinks.size === 1) this.#begin();
    sink.open();
    // Watching and the snapshot are one synchronous step: no change falls between them.
    this.#send(sink, this.#frame("snapshot", snapshot));
    return () => this.#drop(sink);
  }

  /** Ends every stream and refuses new ones (the neuron is stopping); idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const sink of [...this.#sinks]) {
      this.#drop(sink);
      try {
        sink.end();
      } catch {
        // Already gone.
      }
    }
  }

  #begin(): void {
    this.#unwatch = this.#models.watch({
      changed: (change) => {
        if ("removed" in change) this.#forget(change.id);
        this.#broadcast(this.#frame("model", change));
      },
      work: (id) => this.#workChanged(id),
    });
    this.#heartbeat = setInterval(() => {
      const id = this.#lastId + 1;
      const beat: HeartbeatEvent = { at: new Date(this.#now()).toISOString(), seq: id };
      this.#broadcast(this.#frame("heartbeat", beat));
    }, this.#heartbeatMs);
    this.#heartbeat.unref?.();
  }

  /** The last stream ended: nothing is watched or timed while nobody listens. */
  #end(): void {
    this.#unwatch?.();
    this.#unwatch = null;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    for (const id of [...this.#work.keys()]) this.#forget(id);
  }

  #drop(sink: EventSink): void {
    if (!this.#sinks.delete(sink)) return;
    if (this.#sinks.size === 0) this.#end();
  }

  #forget(id: string): void {
    const slot = this.#work.get(id);
    if (slot?.timer) clearTimeout(slot.timer);
    this.#work.delete(id);
  }

  /** Sends the model's counts now, or once NEURON_EVENT_COALESCE_MS after the last time. */
  #workChanged(id: string): void {
    const slot = this.#work.get(id);
    if (slot?.timer) return;
    const waitMs = slot ? slot.sentMs + this.#coalesceMs - this.#now() : 0;
    if (!slot || waitMs <= 0) {
      this.#sendWork(id);
      return;
    }
    slot.timer = setTimeout(() => {
      slot.timer = null;
      this.#sendWork(id);
    }, waitMs);
    slot.timer.unref?.();
  }

  #sendWork(id: string): void {
    const model = this.#models.describe(id);
    // Forgotten meanwhile: its `removed` event went out already.
    if (!model) {
      this.#forget(id);
      return;
    }
    this.#work.set(id, { sentMs: this.#now(), timer: null });
    this.#broadcast(this.#frame("model", model));
  }

  #frame(event: NeuronEventName, data: unknown): string {
    this.#lastId += 1;
    return `id: ${this.#lastId}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  #broadcast(frame: string): void {
    // Copied first: a stream cut while being written to leaves the set.
    for (const sink of [...this.#sinks]) this.#send(sink, frame);
  }

  /** Writes `frame`; a stream that holds more than maxBufferedBytes unsent is cut. */
  #send(sink: EventSink, frame: string): void {
    let kept: boolean;
    try {
      kept = sink.write(frame);
    } catch {
      this.#drop(sink);
      return;
    }
    if (kept || sink.buffered <= this.#maxBufferedBytes) return;
    this.#log.warn(
      { buffered_bytes: sink.buffered, max_bytes: this.#maxBufferedBytes },
      "event stream subscriber is not reading; disconnected",
    );
    this.#drop(sink);
    sink.cut();
  }
}

/** `GET /events`: one stream per request, for as long as the client keeps it open. */
export const eventsHandler =
  (hub: EventHub): RequestHandler =>
  (_req, res) => {
    const sink: EventSink = {
      open: () => startEventStream(res),
      write: (frame) => (res.writableEnded || res.destroyed ? true : res.write(frame)),
      get buffered() {
        return res.writableLength;
      },
      cut: () => res.destroy(),
      end: () => {
        if (!res.writableEnded) res.end();
      },
    };
    // Throws 503 before anything is written when the hub is full or stopping.
    const unsubscribe = hub.subscribe(sink);
    res.on("close", unsubscribe);
    // Without a listener an error on the response would crash the process.
    res.on("error", unsubscribe);
    // A client gone before the stream opened has no `close` left to come.
    if (res.destroyed) unsubscribe();
  };
