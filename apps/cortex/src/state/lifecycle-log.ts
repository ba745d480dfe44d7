import type { DiscoveryAnswer, FleetEvent } from "@cortex/protocol";
import { eq } from "drizzle-orm";
import type { CortexDb } from "./database.js";
import { type ModelEventType, modelEvents, nodes } from "./schema.js";
import { WriteBehind, type WriteBehindOptions } from "./write-behind.js";

/** One row of model_events. */
export interface ModelEventEntry {
  /** Epoch ms. */
  at: number;
  type: ModelEventType;
  node?: string | null;
  model?: string | null;
  durationMs?: number | null;
  detail?: Record<string, unknown> | null;
}

/** What a FleetStore offers; only `subscribe` is needed. */
export interface FleetEventSource {
  subscribe(listener: (event: FleetEvent) => void): () => void;
}

export interface LifecycleLogOptions extends WriteBehindOptions {
  /** The clock for `updated_at` of discovery rows (default Date.now). */
  now?: () => number;
}

type LifecycleOp =
  | { kind: "event"; entry: ModelEventEntry }
  | { kind: "health"; node: string; healthy: boolean; at: number }
  | {
      kind: "discovery";
      name: string;
      url: string;
      answer: DiscoveryAnswer;
      lastOkAt: number | null;
      at: number;
    };

const msOf = (iso: string, fallback: () => number): number => {
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : fallback();
};

/**
 * The model_events row for a fleet event (a node's drain and resume too: when a node was out is
 * history an operator asks for), or undefined for the ones not kept: load_progress
 * (many per load, only useful live), swap_queued (one per model starting to wait, live only;
 * its swap_started is kept) and catalogue_reloaded (not a model lifecycle event).
 */
export const eventEntry = (
  event: FleetEvent,
  now: () => number = Date.now,
): ModelEventEntry | undefined => {
  /** The row's common part: when, what, where (and which model, for a model's event). */
  const row = (type: ModelEventType, node: string, model?: string): ModelEventEntry => ({
    at: msOf(event.at, now),
    type,
    node,
    ...(model === undefined ? {} : { model }),
  });
  switch (event.type) {
    case "node_health":
      return {
        ...row("node_health", event.node),
        detail: { healthy: event.healthy, error: event.error },
      };
    case "model_state":
      return {
        ...row(event.type, event.node, event.model),
        detail: { from: event.from, to: event.to },
      };
    case "load_started":
      return { ...row(event.type, event.node, event.model), detail: { evicting: event.evicting } };
    case "load_finished":
      return { ...row(event.type, event.node, event.model), durationMs: event.load_ms };
    case "load_failed":
      return { ...row(event.type, event.node, event.model), detail: { error: event.error } };
    case "evicted":
    case "unloaded":
      return row(event.type, event.node, event.model);
    case "swap_started":
      return {
        ...row(event.type, event.node, event.model),
        durationMs: event.waited_ms,
        detail: { evicting: event.evicting, waiting: event.waiting },
      };
    case "scaled_out":
      return {
        ...row(event.type, event.node, event.model),
        detail: { reason: event.reason, replicas: event.replicas },
      };
    case "scaled_in":
      return { ...row(event.type, event.node, event.model), detail: { replicas: event.replicas } };
    case "node_draining":
    case "node_drained":
    case "node_resumed":
    case "node_removed":
      return row(event.type, event.node);
    case "node_joined":
      return { ...row(event.type, event.node), detail: { url: event.url } };
    case "load_progress":
    case "swap_queued":
    case "catalogue_reloaded":
    case "catalogue_problem":
      return undefined;
  }
};

/**
 * Model lifecycle history and the nodes table, written behind like the request log (same
 * batching, bound and failure rules) and in arrival order, so a health flip and a discovery
 * for the same node land in the order they happened.
 */
/** Writes one buffered operation. Low volume (a few rows per load): plain drizzle statements. */
const lifecycleWriter =
  (db: CortexDb) =>
  (op: LifecycleOp): void => {
    switch (op.kind) {
      case "event": {
        const { entry } = op;
        db.insert(modelEvents)
          .values({
            at: entry.at,
            type: entry.type,
            node: entry.node ?? null,
            model: entry.model ?? null,
            durationMs: entry.durationMs ?? null,
            detail: entry.detail ?? null,
          })
          .run();
        return;
      }
      case "health":
        // A node not yet discovered has no row (its url is unknown); discovery creates it.
        db.update(nodes)
          .set(
            op.healthy
              ? { healthy: true, lastOkAt: op.at, updatedAt: op.at }
              : { healthy: false, updatedAt: op.at },
          )
          .where(eq(nodes.name, op.node))
          .run();
        return;
      case "discovery": {
        const row = {
          url: op.url,
          healthy: true,
          lastOkAt: op.lastOkAt,
          discovery: op.answer,
          updatedAt: op.at,
        };
        db.insert(nodes)
          .values({ name: op.name, ...row })
          .onConflictDoUpdate({ target: nodes.name, set: row })
          .run();
        return;
      }
    }
  };

export class LifecycleLog extends WriteBehind<LifecycleOp> {
  readonly #now: () => number;
  readonly #detachers = new Set<() => void>();

  constructor(db: CortexDb, options: LifecycleLogOptions = {}) {
    super(
      "lifecycle log",
      { transaction: (work) => db.transaction(() => work()), write: lifecycleWriter(db) },
      options,
    );
    this.#now = options.now ?? Date.now;
  }

  /**
   * Records the store's lifecycle events from now on; returns the function that stops it.
   * Never throws into the store: recording only appends to the buffer.
   */
  attach(store: FleetEventSource): () => void {
    const unsubscribe = store.subscribe((event) => {
      const entry = eventEntry(event, this.#now);
      if (entry === undefined) return;
      this.push({ kind: "event", entry });
      if (event.type === "node_health")
        this.push({
          kind: "health",
          node: event.node,
          healthy: event.healthy,
          at: entry.at,
        });
    });
    const detach = (): void => {
      this.#detachers.delete(detach);
      unsubscribe();
    };
    this.#detachers.add(detach);
    return detach;
  }

  /** Records an event no FleetEvent carries, e.g. `load_requested` from the load API. */
  record(entry: ModelEventEntry): void {
    this.push({ kind: "event", entry });
  }

  /**
   * Upserts the node's row with its discovery answer (the poller's onDiscovery). The node just
   * answered, so the row says healthy; later node_health events flip it. `lastOkAt` is epoch
   * ms or an ISO time.
   */
  saveDiscovery(
    name: string,
    url: string,
    answer: DiscoveryAnswer,
    lastOkAt: number | string | null,
  ): void {
    const at = this.#now();
    const okAt = typeof lastOkAt === "string" ? msOf(lastOkAt, () => at) : lastOkAt;
    this.push({ kind: "discovery", name, url, answer, lastOkAt: okAt, at });
  }

  /** Detaches from every store, flushes and stops the timer. Call before closing the database. */
  override close(): void {
    for (const detach of [...this.#detachers]) detach();
    super.close();
  }
}
