import { type Catalogue, resolveModelName } from "@cortex/catalogue";
import type { FleetSnapshot } from "@cortex/protocol";
import { type Affinity, hash32, indexSnapshot, replicaKey } from "@cortex/routing";
import { isLoadedReplica } from "./fleet-views.js";
import type { AffinityKey } from "./lease.js";

/**
 * Each conversation's own replica, so its next turns go back there (its prompt is in that
 * engine's cache) even after the replica set changed. A bounded map: entries expire
 * `ttlMs` after their last use and the least recently used go first past `maxEntries`, so
 * clients cannot grow it without bound.
 */
export class AffinityTable {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  /** key → [replica key, expiry]; a Map keeps insertion order, refreshed on every use. */
  readonly #entries = new Map<string, { replica: string; expiresMs: number }>();

  constructor(ttlMs: number, maxEntries = 100_000) {
    this.#ttlMs = ttlMs;
    this.#maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The replica `key` used last, unless that was more than the TTL ago. */
  get(key: string, nowMs: number): string | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresMs <= nowMs) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.replica;
  }

  /** Keeps `key`'s replica for another TTL from now. */
  touch(key: string, nowMs: number): void {
    const entry = this.#entries.get(key);
    if (entry !== undefined) this.set(key, entry.replica, nowMs);
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  set(key: string, replica: string, nowMs: number): void {
    this.#entries.delete(key);
    this.#entries.set(key, { replica, expiresMs: nowMs + this.#ttlMs });
    // The oldest entries are first in the map: drop expired ones and any beyond the bound.
    for (const [oldest, entry] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && entry.expiresMs > nowMs) break;
      this.#entries.delete(oldest);
    }
  }
}

/** One request's conversation, as the dispatcher asks about it. */
export interface Conversation {
  /** What routing needs: its hash, and its own replica while that one is still loaded. */
  affinity(snapshot: FleetSnapshot, nowMs: number): Affinity;
  /** It was served on `node`: a hit (or its first request) makes that its own replica. */
  served(node: string, outcome: "hit" | "spill" | undefined, nowMs: number): void;
}

/**
 * The conversation of `key` for `model`. Its own replica is where its first request went (or,
 * once that replica is gone, the next one the ring sends it to): a spill past the load bound
 * serves only that request, and the next turn tries its own replica again.
 */
export const conversationOf = (
  table: AffinityTable,
  model: string,
  key: string,
  loadFactor: number,
): Conversation => {
  const id = `${model}\u0000${key}`;
  const hash = hash32(id);
  return {
    affinity: (snapshot, nowMs) => {
      let preferred = table.get(id, nowMs);
      // A replica no longer loaded anywhere lets the ring name the conversation's next one.
      if (preferred !== undefined && !isLoadedReplica(snapshot, preferred)) {
        table.delete(id);
        preferred = undefined;
      }
      return { hash, loadFactor, preferred };
    },
    served: (node, outcome, nowMs) => {
      if (table.get(id, nowMs) === undefined || outcome === "hit")
        table.set(id, replicaKey(node, model), nowMs);
      else table.touch(id, nowMs);
    },
  };
};

/** What a request's conversation is worked out from. */
export interface RequestAffinityOptions {
  readonly key: AffinityKey | undefined;
  readonly table: AffinityTable | undefined;
  readonly settings: { readonly loadFactor: number } | undefined;
  readonly model: string;
  readonly catalogue: () => Catalogue;
}

/**
 * One request's conversation, worked out (its key read from the body) only once its model has
 * two loaded replicas to choose between: with one there is nothing to keep it on. Affinity off,
 * or no key: never any.
 */
export class RequestAffinity {
  readonly #options: RequestAffinityOptions;
  #keyed = false;
  #conversation: Conversation | undefined;

  constructor(options: RequestAffinityOptions) {
    this.#options = options;
  }

  /** The conversation in `snapshot`, if it has one worth keeping the request on. */
  in(snapshot: FleetSnapshot): Conversation | undefined {
    const { key, table, settings, model, catalogue } = this.#options;
    if (this.#keyed || key === undefined || table === undefined || settings === undefined)
      return this.#conversation;
    const id = resolveModelName(catalogue(), model)?.id ?? model;
    if ((indexSnapshot(snapshot).byModel.get(id)?.healthy.loaded.length ?? 0) < 2) return undefined;
    this.#keyed = true;
    const read = typeof key === "function" ? key() : key;
    this.#conversation =
      read === undefined ? undefined : conversationOf(table, model, read, settings.loadFactor);
    return this.#conversation;
  }

  /** The request was served on `node` (see Conversation.served); nothing without one. */
  served(node: string, outcome: "hit" | "spill" | undefined, nowMs: number): void {
    this.#conversation?.served(node, outcome, nowMs);
  }
}
