import {
  type FleetSnapshot,
  ModelEvent,
  NEURON_HEARTBEAT_MS,
  SnapshotEvent,
} from "@cortex/protocol";
import type { Log } from "../log.js";
import type { EventStream, EventStreamEnd } from "../neurons/event-stream.js";
import type { NeuronClient } from "../neurons/neuron-client.js";
import type { FleetStore } from "./fleet-store.js";
import type { LiveNews } from "./live-news.js";

// Cortex's half of docs/contract.md "Live state": one `GET /events` stream per healthy neuron,
// whose news reaches the snapshot at once (through the poller, which keeps polling as the
// consistency check). A stream that drops makes its node suspect: unroutable and polled now.

/**
 * How long a stream may stay silent before it counts as dropped. A neuron sends a heartbeat
 * every NEURON_HEARTBEAT_MS (1 s), so this allows one heartbeat half a second late: a hung or
 * partitioned neuron (whose kernel may still hold the connection open) is suspect within 1.5 s
 * of its last byte, where polling alone takes up to poll_interval_ms + poll_timeout_ms.
 */
export const LIVE_WATCHDOG_MS = NEURON_HEARTBEAT_MS + 500;

/** Delays before subscribing again after 1, 2, … drops in a row (the last one repeats). */
export const LIVE_BACKOFF_MS: readonly number[] = [0, 1000, 2000, 5000, 10_000, 30_000];

/** A stream that lived this long was stable: its drop starts the backoff afresh. */
export const LIVE_STABLE_MS = 30_000;

/** Where news goes and who hears of a lost stream: the poller. */
export interface LiveSink {
  news(node: string, news: LiveNews): void;
  /** The node is unroutable until a poll sent from now on answers; polled now. */
  suspect(node: string, why: string): void;
}

/** Where nodes, clients and the sink come from; the timings default to the constants above. */
export interface LiveEventsOptions {
  readonly store: Pick<FleetStore, "snapshot" | "onReplaced">;
  /** The client of a node in the snapshot; one that throws leaves the node to polling. */
  readonly client: (name: string) => Pick<NeuronClient, "events">;
  readonly sink: LiveSink;
  readonly log: Log;
  readonly watchdogMs?: number;
  readonly backoffMs?: readonly number[];
  readonly stableMs?: number;
  readonly now?: () => number;
}

/** One node's subscription, whatever its state. */
interface NodeStream {
  stream: EventStream | null;
  openedAtMs: number;
  /** When the stream last sent a byte (or opened). */
  seenAtMs: number;
  watchdog: ReturnType<typeof setTimeout> | null;
  /** Drops (and refusals) in a row, for the backoff. */
  drops: number;
  /** The backoff's wait before the next subscription; none may start meanwhile. */
  retry: ReturnType<typeof setTimeout> | null;
  /** The neuron answered 404: polling only, until the node is next seen unhealthy. */
  absent: boolean;
  absentLogged: boolean;
  /** The reconcile pass that last saw the node in the snapshot. */
  seen: number;
  /** The node's URL when the stream opened: a node given another (a rejoin) reopens. */
  url: string;
}

/**
 * Keeps one event stream open to every node whose last poll was healthy. Nodes are read from
 * the snapshot at each replacement: a node that becomes healthy is subscribed (after the
 * backoff of a stream that kept dropping), a node that leaves the snapshot is unsubscribed.
 */
export class LiveEvents {
  readonly #options: LiveEventsOptions;
  readonly #watchdogMs: number;
  readonly #backoffMs: readonly number[];
  readonly #stableMs: number;
  readonly #now: () => number;
  readonly #nodes = new Map<string, NodeStream>();
  #pass = 0;
  #running = false;
  #unsubscribe: (() => void) | null = null;

  constructor(options: LiveEventsOptions) {
    this.#options = options;
    this.#watchdogMs = options.watchdogMs ?? LIVE_WATCHDOG_MS;
    this.#backoffMs = options.backoffMs ?? LIVE_BACKOFF_MS;
    this.#stableMs = options.stableMs ?? LIVE_STABLE_MS;
    this.#now = options.now ?? Date.now;
  }

  /** Nodes with a stream open or opening now. */
  get streams(): number {
    let open = 0;
    for (const state of this.#nodes.values()) if (state.stream) open += 1;
    return open;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#unsubscribe = this.#options.store.onReplaced((snapshot) => this.#reconcile(snapshot));
    this.#reconcile(this.#options.store.snapshot);
  }

  /** Closes every stream (no node becomes suspect for it) and subscribes no more. */
  stop(): void {
    this.#running = false;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    for (const [name, state] of this.#nodes) {
      this.#close(state);
      if (state.retry) clearTimeout(state.retry);
      this.#nodes.delete(name);
    }
  }

  #reconcile(snapshot: FleetSnapshot): void {
    if (!this.#running) return;
    this.#pass += 1;
    for (const node of snapshot.nodes) {
      let state = this.#nodes.get(node.name);
      if (!state) {
        state = {
          stream: null,
          openedAtMs: 0,
          seenAtMs: 0,
          watchdog: null,
          drops: 0,
          retry: null,
          absent: false,
          absentLogged: false,
          seen: 0,
          url: node.url,
        };
        this.#nodes.set(node.name, state);
      }
      state.seen = this.#pass;
      // The node was given another address (a rejoin, a cortex.yaml reload): the old stream goes.
      if (state.url !== node.url) {
        this.#close(state);
        state.absent = false;
        state.url = node.url;
      }
      // A node that went away may come back as a newer neuron: it is asked again.
      if (!node.healthy) state.absent = false;
      else if (!state.stream && !state.retry && !state.absent) this.#open(node.name, state);
    }
    for (const [name, state] of this.#nodes) {
      if (state.seen === this.#pass) continue;
      this.#close(state);
      if (state.retry) clearTimeout(state.retry);
      this.#nodes.delete(name);
    }
  }

  #open(name: string, state: NodeStream): void {
    state.openedAtMs = this.#now();
    state.seenAtMs = state.openedAtMs;
    try {
      state.stream = this.#options.client(name).events({
        opened: () => this.#alive(state),
        alive: () => this.#alive(state),
        message: (event, data) => this.#message(name, state, event, data),
        ended: (end) => this.#ended(name, state, end),
      });
    } catch (error) {
      this.#options.log.warn({ node: name, err: error }, "cannot subscribe to neuron events");
      this.#again(name, state);
      return;
    }
    this.#arm(name, state, this.#watchdogMs);
  }

  #alive(state: NodeStream): void {
    state.seenAtMs = this.#now();
  }

  /** The watchdog checks when it fires whether the stream was silent that long (no churn). */
  #arm(name: string, state: NodeStream, inMs: number): void {
    state.watchdog = setTimeout(() => {
      state.watchdog = null;
      if (!state.stream) return;
      const left = state.seenAtMs + this.#watchdogMs - this.#now();
      if (left > 0) {
        this.#arm(name, state, left);
        return;
      }
      this.#close(state);
      this.#dropped(name, state, `no event for ${this.#watchdogMs} ms`);
    }, inMs);
    state.watchdog.unref?.();
  }

  #close(state: NodeStream): void {
    if (state.watchdog) clearTimeout(state.watchdog);
    state.watchdog = null;
    state.stream?.close();
    state.stream = null;
  }

  #message(name: string, state: NodeStream, event: string, data: string): void {
    let news: LiveNews | null | undefined;
    try {
      news = newsOf(event, JSON.parse(data) as unknown);
    } catch {
      news = null;
    }
    if (news === undefined) return;
    if (news === null) {
      // Polling still keeps its state; the stream is asked for again after the backoff.
      this.#options.log.warn(
        { node: name, event },
        "neuron sent an event cortex cannot read; dropped its stream",
      );
      this.#close(state);
      this.#again(name, state);
      return;
    }
    try {
      this.#options.sink.news(name, news);
    } catch (error) {
      this.#options.log.error({ node: name, err: error }, "applying neuron news failed");
    }
  }

  #ended(name: string, state: NodeStream, end: EventStreamEnd): void {
    if (state.watchdog) clearTimeout(state.watchdog);
    state.watchdog = null;
    state.stream = null;
    if (end.kind === "absent") {
      state.absent = true;
      state.drops = 0;
      if (!state.absentLogged)
        this.#options.log.info(
          { node: name },
          "neuron has no /events (an older neuron): its state comes from polls only",
        );
      state.absentLogged = true;
    } else if (end.kind === "refused") {
      this.#options.log.warn(
        { node: name, status: end.status },
        "neuron refused its event stream; polling only until it is asked again",
      );
      this.#again(name, state);
    } else this.#dropped(name, state, end.why);
  }

  /** A stream that was open (or opening) is lost: the node is suspect, and asked again later. */
  #dropped(name: string, state: NodeStream, why: string): void {
    this.#options.log.warn({ node: name, why }, "neuron event stream dropped");
    this.#again(name, state);
    this.#options.sink.suspect(name, `event stream: ${why}`);
  }

  /** Waits the backoff before the next subscription (which also waits for a healthy poll). */
  #again(name: string, state: NodeStream): void {
    const stable = state.openedAtMs > 0 && this.#now() - state.openedAtMs >= this.#stableMs;
    state.drops = stable ? 1 : state.drops + 1;
    const delays = this.#backoffMs;
    const delay = delays[Math.min(state.drops, delays.length) - 1] ?? 0;
    if (state.retry) clearTimeout(state.retry);
    state.retry = setTimeout(() => {
      state.retry = null;
      const node = this.#options.store.snapshot.nodes.find((entry) => entry.name === name);
      if (this.#running && node?.healthy && !state.stream && !state.absent) this.#open(name, state);
    }, delay);
    state.retry.unref?.();
  }
}

/**
 * The news in one message: undefined for a message that carries none (heartbeats, names a newer
 * neuron may add), null for one that cannot be read.
 */
const newsOf = (event: string, data: unknown): LiveNews | null | undefined => {
  if (event === "snapshot") {
    const parsed = SnapshotEvent.safeParse(data);
    return parsed.success ? { kind: "snapshot", models: parsed.data } : null;
  }
  if (event === "model") {
    const parsed = ModelEvent.safeParse(data);
    if (!parsed.success) return null;
    return "removed" in parsed.data
      ? { kind: "removed", id: parsed.data.id }
      : { kind: "model", model: parsed.data };
  }
  return undefined;
};
