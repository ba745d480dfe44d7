import { type Catalogue, resolveModelName } from "@cortex/catalogue/rules";
import {
  type FleetSnapshot,
  type ModelProfile,
  type ModelStatus,
  RESIDENT_STATUSES,
} from "@cortex/protocol";
import { pickByAffinity } from "./affinity.js";
import {
  effectiveFree,
  type FleetIndex,
  indexSnapshot,
  type ModelReplicas,
  type Replica,
  replicaLoad,
  residentShareMb,
  totalFree,
} from "./fleet-index.js";
import { drainOf, inService } from "./node-fit.js";
import { planPlacement, RETRY_AFTER_S } from "./placement.js";
import { pickReplica } from "./replica.js";
import { planSwap } from "./swap-placement.js";
import type { Decision, LiveState, Reject, RoutingRequest } from "./types.js";

const reject = (code: Reject["code"], message: string, retryable: boolean): Reject => ({
  kind: "reject",
  code,
  message,
  retry_after_s: retryable ? RETRY_AFTER_S : null,
});

const NONE: readonly Replica[] = [];

/**
 * Healthy replicas in a status on nodes in service (not draining or drained), narrowed to the
 * requested node when there is one. Without drains this filters nothing (the hot path).
 */
const healthyIn = (
  replicas: ModelReplicas | undefined,
  status: ModelStatus,
  onlyNode: string | undefined,
  live: LiveState | undefined,
): readonly Replica[] => {
  const all = replicas?.healthy[status] ?? NONE;
  const drains = live?.nodeDrains;
  const list =
    drains === undefined || drains.size === 0
      ? all
      : all.filter((replica) => !drains.has(replica.node.name));
  return onlyNode === undefined ? list : list.filter((replica) => replica.node.name === onlyNode);
};

/** Replicas that take new requests: not draining for a swap, unless the request holds a turn. */
const open = (
  list: readonly Replica[],
  live: LiveState | undefined,
  request: RoutingRequest,
): readonly Replica[] => {
  const draining = live?.draining;
  if (draining === undefined || draining.size === 0 || request.turn === true) return list;
  return list.some((replica) => draining.has(replica.key))
    ? list.filter((replica) => !draining.has(replica.key))
    : list;
};

/** Without replicas whose circuit is open, unless none would be left (then all of them). */
const unblocked = (list: readonly Replica[], live: LiveState | undefined): readonly Replica[] => {
  const blocked = live?.blocked;
  if (blocked === undefined || blocked.size === 0) return list;
  const allowed = list.filter((replica) => !blocked.has(replica.key));
  return allowed.length > 0 ? allowed : list;
};

/** Replicas with a free slot on the highest-priority nodes among them (affinity's candidates). */
const preferredTier = (list: readonly Replica[], live: LiveState | undefined): Replica[] => {
  let best = Number.NEGATIVE_INFINITY;
  const free = list.filter((replica) => replicaLoad(replica, live) < replica.model.max_concurrency);
  for (const replica of free) best = Math.max(best, replica.node.priority ?? 0);
  return free.filter((replica) => (replica.node.priority ?? 0) === best);
};

/**
 * One more replica of a saturated catalogue model, when `max_replicas` allows it and a node
 * without one can take it without evicting a busy model (placement evicts only idle ones).
 */
const scaleOutFor = (
  index: FleetIndex,
  profile: ModelProfile | undefined,
  catalogue: Catalogue,
  replicas: ModelReplicas | undefined,
  live: LiveState | undefined,
  onlyNode: string | undefined,
): Extract<Decision, { kind: "saturated" }>["scaleOut"] => {
  if (profile === undefined || onlyNode !== undefined || replicas === undefined) return undefined;
  let serving = 0;
  // Replicas that hold (or are about to hold) the model's memory serve it, or will; those on a
  // draining node serve nothing new, so a replacement may be placed while they finish.
  for (const status of RESIDENT_STATUSES)
    serving += healthyIn(replicas, status, undefined, live).length;
  if (serving >= profile.max_replicas) return undefined;
  // A node where it is idle-unloaded or failed may take the new replica (loading it there
  // again); a node that serves it already may not: one replica per node.
  const holding = new Set(
    replicas.all
      .filter((replica) => RESIDENT_STATUSES.has(replica.model.status))
      .map((replica) => replica.node.name),
  );
  const plan = planPlacement(index, profile, catalogue, live, undefined, holding);
  return "kind" in plan ? undefined : { profile, plan };
};

const firstByName = (replicas: readonly Replica[]): Replica | undefined =>
  replicas.reduce<Replica | undefined>(
    (best, replica) => (best === undefined || replica.node.name < best.node.name ? replica : best),
    undefined,
  );

/** Unloaded copies: a node where the model fits in free memory first, then most free, then name. */
const pickUnloaded = (replicas: readonly Replica[]): Replica | undefined => {
  let best: { replica: Replica; fits: boolean; free: number } | undefined;
  for (const replica of replicas) {
    const free = effectiveFree(replica.node);
    const share = residentShareMb(replica.model);
    const fits = replica.model.devices.every((index) => (free.get(index) ?? 0) >= share);
    const total = totalFree(free);
    const better =
      best === undefined ||
      (fits !== best.fits
        ? fits
        : total !== best.free
          ? total > best.free
          : replica.node.name < best.replica.node.name);
    if (better) best = { replica, fits, free: total };
  }
  return best?.replica;
};

/**
 * Decides where a request goes. Pure: the same inputs give the same decision, and `now` is the
 * only notion of time. Order (DESIGN.md "Resolving a request"): alias → loaded replica (or
 * saturated, with a scale-out when allowed) → still loading → draining (wait for its turn) →
 * recovering (hold) → lazily unloaded → catalogue cold-load → swap (busy models hold the
 * memory) → not found.
 * Only healthy nodes in service count (a draining or drained node takes no new request); a
 * model known only on unhealthy or draining nodes is unavailable, not unknown.
 */
export const resolve = (
  snapshot: FleetSnapshot,
  catalogue: Catalogue,
  request: RoutingRequest,
  live?: LiveState,
): Decision => {
  const index = indexSnapshot(snapshot);
  const profile = resolveModelName(catalogue, request.model);
  const id = profile?.id ?? request.model;
  const onlyNode = request.node;
  if (onlyNode !== undefined && !index.byNode.has(onlyNode)) {
    return reject("not_found", `node "${onlyNode}" is not in the fleet`, false);
  }
  const replicas = index.byModel.get(id);

  const allLoaded = healthyIn(replicas, "loaded", onlyNode, live);
  const loaded = unblocked(open(allLoaded, live, request), live);
  if (request.affinity !== undefined && loaded.length > 1) {
    const chosen = pickByAffinity(preferredTier(loaded, live), request.affinity, live);
    if (chosen) {
      const { node } = chosen.replica;
      return { kind: "route", model: id, node: node.name, url: node.url, affinity: chosen.outcome };
    }
  }
  const picked = pickReplica(loaded, live);
  if (picked !== null) {
    if (picked.saturated) {
      const scaleOut = scaleOutFor(index, profile, catalogue, replicas, live, onlyNode);
      return scaleOut
        ? { kind: "saturated", model: id, replicas: loaded.length, scaleOut }
        : { kind: "saturated", model: id, replicas: loaded.length };
    }
    const { node } = picked.replica;
    return { kind: "route", model: id, node: node.name, url: node.url };
  }

  const allLoading = healthyIn(replicas, "loading", onlyNode, live);
  const loading = firstByName(open(allLoading, live, request));
  if (loading) {
    const { node } = loading;
    return { kind: "lazy", model: id, node: node.name, url: node.url, reason: "loading" };
  }
  // Resident, but every copy drains for a swap: the request waits for the model's next turn.
  if (allLoaded.length > 0 || allLoading.length > 0) return { kind: "draining", model: id };

  const recovering = firstByName(healthyIn(replicas, "recovering", onlyNode, live));
  if (recovering) {
    return { kind: "hold", model: id, node: recovering.node.name, retry_after_s: RETRY_AFTER_S };
  }

  const unloaded = pickUnloaded(healthyIn(replicas, "unloaded", onlyNode, live));
  if (unloaded) {
    const { node } = unloaded;
    return { kind: "lazy", model: id, node: node.name, url: node.url, reason: "unloaded" };
  }

  if (profile) {
    const plan = planPlacement(index, profile, catalogue, live, onlyNode);
    if (!("kind" in plan)) return { kind: "load", model: id, profile, plan };
    if (plan.code !== "no_capacity") return plan;
    // Busy models hold the memory: wait for them on the node where that costs least, unless
    // higher priorities hold it (waiting would never help).
    const swap = planSwap(index, profile, catalogue, live, onlyNode);
    if (swap === null) return plan;
    return { kind: "swap", model: id, profile, ...swap };
  }

  // Not in the catalogue: only what the fleet reports can serve it.
  const known = (replicas?.all ?? NONE).filter(
    (replica) => onlyNode === undefined || replica.node.name === onlyNode,
  );
  const failed = firstByName(healthyIn(replicas, "failed", onlyNode, live));
  if (failed) {
    return reject(
      "service_unavailable",
      `model "${id}" failed on node ${failed.node.name}: ${failed.model.error ?? "unknown error"}; load it again`,
      false,
    );
  }
  if (known.length > 0) {
    const drained = known.filter((replica) => !inService(live, replica.node.name));
    const names = known.map((replica) =>
      drained.length === 0
        ? replica.node.name
        : `${replica.node.name} (${drainOf(live, replica.node.name) ?? "unhealthy"})`,
    );
    return reject(
      "service_unavailable",
      `model "${id}" is only on ${drained.length === 0 ? "unhealthy" : drained.length === known.length ? "draining" : "draining or unhealthy"} node(s): ${names.join(", ")}`,
      true,
    );
  }
  return reject(
    "model_not_found",
    `model "${request.model}" does not exist in the catalogue or on any node`,
    false,
  );
};
