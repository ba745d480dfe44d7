import { type Replica, replicaLoad } from "./fleet-index.js";
import type { LiveState } from "./types.js";

// Conversation affinity: consistent hashing with bounded loads (CHWBL). Each replica owns
// points on a ring; a conversation's key hashes to a point, and its requests go to the first
// replica clockwise whose load stays within `loadFactor` × the mean (counting this request),
// spilling to the next one on the ring otherwise. A replica that appears or goes moves only the
// keys whose points it owns. Pure: the ring of a replica set is memoised by its members.

/**
 * Points per replica. 64 left three replicas owning 27 % to 41 % of the keys (the busiest one's
 * conversations then spill more often), 256 still 31 % to 37 %; 1024 bring each within about
 * 1.5 points of a third. A ring is built once per replica set.
 */
const POINTS_PER_REPLICA = 1024;

/** FNV-1a, 32 bits: a stable, fast hash of a string (not for secrets). */
export const hash32 = (text: string): number => {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // A final avalanche, so near keys land far apart on the ring.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
};

interface Ring {
  /** Sorted point positions. */
  readonly points: Uint32Array;
  /** For each point, the replica key that owns it. */
  readonly owners: readonly string[];
  /** How many replicas own points. */
  readonly replicas: number;
}

const rings = new Map<string, Ring>();
const MAX_RINGS = 4096;

/** The ring of these replica keys (any order), built once per distinct set. */
export const ringOf = (keys: readonly string[]): Ring => {
  const sorted = [...keys].sort();
  const id = sorted.join("\u0001");
  const cached = rings.get(id);
  if (cached) return cached;
  const entries: { at: number; owner: string }[] = [];
  for (const key of sorted)
    for (let i = 0; i < POINTS_PER_REPLICA; i += 1)
      entries.push({ at: hash32(`${key}#${i}`), owner: key });
  entries.sort((a, b) => a.at - b.at || (a.owner < b.owner ? -1 : 1));
  const ring: Ring = {
    points: Uint32Array.from(entries.map((entry) => entry.at)),
    owners: entries.map((entry) => entry.owner),
    replicas: new Set(sorted).size,
  };
  // Replica sets change rarely; a bound keeps a fleet that churns from growing the cache.
  if (rings.size >= MAX_RINGS) rings.clear();
  rings.set(id, ring);
  return ring;
};

/** The replica keys in ring order starting at `point`, each once. */
export const ringWalk = (ring: Ring, point: number): string[] => {
  const { points, owners } = ring;
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((points[mid] ?? 0) < point) lo = mid + 1;
    else hi = mid;
  }
  const seen = new Set<string>();
  const order: string[] = [];
  for (let step = 0; step < owners.length && seen.size < ring.replicas; step += 1) {
    const owner = owners[(lo + step) % owners.length];
    if (owner === undefined || seen.has(owner)) continue;
    seen.add(owner);
    order.push(owner);
  }
  return order;
};

/** What the caller knows of a conversation. */
export interface Affinity {
  /** `hash32` of the conversation's key. */
  readonly hash: number;
  /** The replica that served it last (a replica key), tried first while within the bound. */
  readonly preferred?: string;
  /** How far above the mean load one replica may go (default 1.25). */
  readonly loadFactor: number;
}

export interface AffinityPick {
  readonly replica: Replica;
  /** `hit`: its own replica (remembered, or first on the ring); `spill`: a later one. */
  readonly outcome: "hit" | "spill";
}

/**
 * The replica for a conversation among `replicas` (those that may take a request now): the one
 * it used last, else the first on the ring from its hash, while that replica's load is below
 * both its `max_concurrency` and ⌈loadFactor × (total load + 1) / replicas⌉; past that, the next
 * on the ring. Null when none has room (the caller falls back to the usual pick).
 */
export const pickByAffinity = (
  replicas: readonly Replica[],
  affinity: Affinity,
  live: LiveState | undefined,
): AffinityPick | null => {
  if (replicas.length === 0) return null;
  const byKey = new Map(replicas.map((replica) => [replica.key, replica]));
  const loads = new Map(replicas.map((replica) => [replica.key, replicaLoad(replica, live)]));
  let total = 0;
  for (const load of loads.values()) total += load;
  const bound = Math.ceil((affinity.loadFactor * (total + 1)) / replicas.length);
  const fits = (replica: Replica): boolean => {
    const load = loads.get(replica.key) ?? 0;
    return load < bound && load < replica.model.max_concurrency;
  };
  const preferred = affinity.preferred === undefined ? undefined : byKey.get(affinity.preferred);
  if (preferred && fits(preferred)) return { replica: preferred, outcome: "hit" };
  const order = ringWalk(ringOf([...byKey.keys()]), affinity.hash);
  for (const [index, key] of order.entries()) {
    const replica = byKey.get(key);
    if (replica && fits(replica)) {
      const own = index === 0 && (preferred === undefined || preferred === replica);
      return { replica, outcome: own ? "hit" : "spill" };
    }
  }
  return null;
};
