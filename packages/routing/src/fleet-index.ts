import type { FleetNode, FleetSnapshot, ModelStatus, NeuronModel } from "@cortex/protocol";
import { RESIDENT_STATUSES } from "@cortex/protocol";
import type { LiveState } from "./types.js";

export interface Replica {
  readonly node: FleetNode;
  readonly model: NeuronModel;
  /** `replicaKey(node.name, model.id)`, computed once per snapshot rather than per request. */
  readonly key: string;
  /** `model.last_accessed` as epoch ms (0 when never used), parsed once per snapshot. */
  readonly reportedMs: number;
}

/** Every copy of one model, with the healthy ones split by status for the routing branches. */
export interface ModelReplicas {
  readonly all: readonly Replica[];
  readonly healthy: Readonly<Record<ModelStatus, readonly Replica[]>>;
}

/** The snapshot reorganised for lookups by model id and node name. Built once per snapshot. */
export interface FleetIndex {
  readonly snapshot: FleetSnapshot;
  readonly byModel: ReadonlyMap<string, ModelReplicas>;
  readonly byNode: ReadonlyMap<string, FleetNode>;
}

export const replicaKey = (node: string, model: string): string => `${node}\u0000${model}`;

/** The node and model of a `replicaKey`; undefined for a string that is not one. */
export const splitReplicaKey = (key: string): { node: string; model: string } | undefined => {
  const cut = key.indexOf("\u0000");
  return cut < 0 ? undefined : { node: key.slice(0, cut), model: key.slice(cut + 1) };
};

const parseTime = (value: string | null): number => {
  if (value === null) return 0;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? 0 : ms;
};

const emptyByStatus = (): Record<ModelStatus, Replica[]> => ({
  loading: [],
  loaded: [],
  unloaded: [],
  recovering: [],
  failed: [],
});

const built = new WeakMap<FleetSnapshot, FleetIndex>();

/**
 * Indexes a snapshot, memoised by identity. Snapshots are immutable and replaced whole, so the
 * cache can never be stale, and an old snapshot's index goes when the snapshot does. This moves
 * all per-snapshot work (grouping, key building, date parsing) off the per-request path.
 */
export const indexSnapshot = (snapshot: FleetSnapshot): FleetIndex => {
  const cached = built.get(snapshot);
  if (cached) return cached;
  const byModel = new Map<string, { all: Replica[]; healthy: Record<ModelStatus, Replica[]> }>();
  const byNode = new Map<string, FleetNode>();
  for (const node of snapshot.nodes) {
    byNode.set(node.name, node);
    for (const model of node.models) {
      const replica: Replica = {
        node,
        model,
        key: replicaKey(node.name, model.id),
        reportedMs: parseTime(model.last_accessed),
      };
      let entry = byModel.get(model.id);
      if (!entry) {
        entry = { all: [], healthy: emptyByStatus() };
        byModel.set(model.id, entry);
      }
      entry.all.push(replica);
      if (node.healthy) entry.healthy[model.status].push(replica);
    }
  }
  const index: FleetIndex = { snapshot, byModel, byNode };
  built.set(snapshot, index);
  return index;
};

/**
 * Requests on a replica: what cortex holds reserved now, plus the load the neuron reported that
 * was not cortex's (reported minus cortex's reservations when the report was requested). Not
 * reported + reserved: the report already contains cortex's requests of that moment, which
 * would count twice. Not max(reported, reserved): a report taken while cortex had the replica
 * full would keep it "full" until the next poll after those requests finished.
 */
export const loadOf = (key: string, model: NeuronModel, live: LiveState | undefined): number => {
  const reported = model.in_flight + model.queued;
  const external = Math.max(0, reported - (live?.reservedAtPoll?.get(key) ?? 0));
  return external + (live?.reserved?.get(key) ?? 0);
};

/** Requests on a replica or waiting for its load to finish: what keeps it from eviction. */
export const busyOf = (key: string, model: NeuronModel, live: LiveState | undefined): number =>
  loadOf(key, model, live) + (live?.pending?.get(key) ?? 0);

/** `loadOf` for an indexed replica. */
export const replicaLoad = (replica: Replica, live: LiveState | undefined): number =>
  loadOf(replica.key, replica.model, live);

export const lastUsedMs = (replica: Replica, live: LiveState | undefined): number => {
  const picked = live?.lastUsedMs?.get(replica.key) ?? 0;
  return Math.max(picked, replica.reportedMs);
};

/** The same for a model entry outside the index (eviction planning, off the hot path). */
export const modelLastUsedMs = (
  node: string,
  model: NeuronModel,
  live: LiveState | undefined,
): number =>
  Math.max(parseTime(model.last_accessed), live?.lastUsedMs?.get(replicaKey(node, model.id)) ?? 0);

/** Per-device memory that resident models hold, by even share over their devices. */
export const residentShareMb = (model: NeuronModel): number =>
  model.devices.length === 0 ? 0 : model.vram_mb / model.devices.length;

/** What free-memory accounting reads of a node; the neuron passes its own view of itself. */
export type MemoryView = Pick<FleetNode, "devices" | "models">;

const freeByNode = new WeakMap<MemoryView, ReadonlyMap<number, number>>();

/**
 * Free memory per device index. The reported figure can lag behind a load that has started
 * but not yet allocated, so it is capped by what the resident models' shares leave free.
 * Memoised per (immutable) view; callers that simulate evictions copy the map first.
 */
export const effectiveFree = (node: MemoryView): ReadonlyMap<number, number> => {
  const cached = freeByNode.get(node);
  if (cached) return cached;
  const held = new Map<number, number>();
  for (const model of node.models) {
    if (!RESIDENT_STATUSES.has(model.status)) continue;
    const share = residentShareMb(model);
    for (const index of model.devices) held.set(index, (held.get(index) ?? 0) + share);
  }
  const free = new Map<number, number>();
  for (const device of node.devices) {
    const accounted = device.vram_total_mb - (held.get(device.index) ?? 0);
    free.set(device.index, Math.max(0, Math.min(device.vram_free_mb, accounted)));
  }
  freeByNode.set(node, free);
  return free;
};

export const totalFree = (free: ReadonlyMap<number, number>): number => {
  let sum = 0;
  for (const value of free.values()) sum += value;
  return sum;
};
