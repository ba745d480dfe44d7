import { type Abortable, ClientSignal } from "@cortex/http-kit";
import type { FleetEvent, FleetSnapshot } from "@cortex/protocol";

/**
 * How long a request on a node that turned unhealthy may go without a byte from it before it is
 * given up. A node falsely suspected is polled at once and healthy again well within it; a
 * stream still flowing from a node that missed its polls keeps going.
 */
export const UNHEALTHY_GRACE_MS = 2000;

/** A request to a neuron was given up because its node turned unhealthy. */
export class NodeUnhealthyError extends Error {
  readonly node: string;

  constructor(node: string, why: string | null) {
    super(`node ${node} became unhealthy${why ? ` (${why})` : ""}`);
    this.name = "NodeUnhealthyError";
    this.node = node;
  }
}

/** One request in flight on a node, as its proxy sees the watch. */
export interface Watched {
  /** Aborts (with a NodeUnhealthyError) when the request is given up. */
  readonly signal: Abortable;
  /** A byte came from the neuron. */
  readonly activity: () => void;
  /** The request is over: stops watching it. Only the first call counts. */
  readonly close: () => void;
}

interface Entry {
  readonly signal: ClientSignal;
  /** Chunks seen; compared with `seen` when the grace is up. */
  bytes: number;
  seen: number;
  timer: NodeJS.Timeout | undefined;
}

export interface NodeWatchOptions {
  /** The fleet now: which nodes are unhealthy when the watch starts. */
  readonly snapshot: FleetSnapshot;
  /** The fleet's events: `node_health` flips arm and disarm the watch. */
  readonly subscribe: (listener: (event: FleetEvent) => void) => () => void;
  readonly graceMs?: number;
}

/**
 * The requests in flight per node. When a node turns unhealthy (a poll streak or a suspicion),
 * each of its requests that then goes `graceMs` without a byte from it is given up: its signal
 * aborts, and its proxy retries it elsewhere or ends it. When the node is healthy again, nothing
 * is given up. So no request waits on a partitioned or hung node longer than the time it takes
 * to mark the node unhealthy, plus `graceMs`.
 */
export class NodeWatch {
  readonly #graceMs: number;
  readonly #entries = new Map<string, Set<Entry>>();
  /** Unhealthy nodes and why (the node's error). */
  readonly #unhealthy = new Map<string, string | null>();
  readonly #unsubscribe: () => void;

  constructor(options: NodeWatchOptions) {
    this.#graceMs = options.graceMs ?? UNHEALTHY_GRACE_MS;
    for (const node of options.snapshot.nodes)
      if (!node.healthy) this.#unhealthy.set(node.name, node.error);
    this.#unsubscribe = options.subscribe((event) => {
      if (event.type !== "node_health") return;
      if (event.healthy) this.#healthy(event.node);
      else this.#unwell(event.node, event.error);
    });
  }

  /** Starts watching a request on `node`. */
  watch(node: string): Watched {
    const entry: Entry = { signal: new ClientSignal(), bytes: 0, seen: 0, timer: undefined };
    let entries = this.#entries.get(node);
    if (entries === undefined) {
      entries = new Set();
      this.#entries.set(node, entries);
    }
    entries.add(entry);
    if (this.#unhealthy.has(node)) this.#arm(node, entry);
    let open = true;
    return {
      signal: entry.signal,
      activity: () => {
        entry.bytes += 1;
      },
      close: () => {
        if (!open) return;
        open = false;
        clearTimeout(entry.timer);
        const set = this.#entries.get(node);
        set?.delete(entry);
        if (set?.size === 0) this.#entries.delete(node);
      },
    };
  }

  /** Requests being watched on `node` (for tests). */
  count(node: string): number {
    return this.#entries.get(node)?.size ?? 0;
  }

  close(): void {
    this.#unsubscribe();
    for (const entries of this.#entries.values())
      for (const entry of entries) clearTimeout(entry.timer);
  }

  #unwell(node: string, why: string | null): void {
    const was = this.#unhealthy.has(node);
    this.#unhealthy.set(node, why);
    if (was) return;
    for (const entry of this.#entries.get(node) ?? []) this.#arm(node, entry);
  }

  #healthy(node: string): void {
    this.#unhealthy.delete(node);
    for (const entry of this.#entries.get(node) ?? []) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
  }

  /** Gives the request `graceMs` for a byte, again after each grace that saw one. */
  #arm(node: string, entry: Entry): void {
    clearTimeout(entry.timer);
    entry.seen = entry.bytes;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (!this.#unhealthy.has(node)) return;
      if (entry.bytes !== entry.seen) this.#arm(node, entry);
      else entry.signal.abort(new NodeUnhealthyError(node, this.#unhealthy.get(node) ?? null));
    }, this.#graceMs);
    entry.timer.unref?.();
  }
}
