import { type Catalogue, eligibleDevices, infeasibility } from "@cortex/catalogue/rules";
import type { Eviction, FleetNode, ModelProfile, NeuronModel } from "@cortex/protocol";
import {
  busyOf,
  effectiveFree,
  type FleetIndex,
  modelLastUsedMs,
  replicaKey,
  residentShareMb,
  totalFree,
} from "./fleet-index.js";
import { holdsWeights, missingWeights } from "./locality.js";
import { drainOf, formatLabels, formatSelector, selectorMismatch } from "./node-fit.js";
import type { LiveState, LoadPlan, Reject } from "./types.js";

/** Retry-After for rejections that clear by themselves (a node comes back, a model goes idle). */
export const RETRY_AFTER_S = 5;

/** Residents not in the catalogue (loaded by hand) rank lowest: anything may evict them. */
const UNKNOWN_PRIORITY = 0;

/** A resident's residency priority: the catalogue's, or the lowest for one loaded by hand. */
export const priorityOf = (catalogue: Catalogue, id: string): number =>
  catalogue.byId.get(id)?.residency_priority ?? UNKNOWN_PRIORITY;

/** Listing every node would make a 10,000-node fleet's error message useless. */
const MAX_REASONS = 5;

export interface DeviceChoice {
  readonly devices: readonly number[];
  readonly evict: readonly NeuronModel[];
}

/**
 * Picks `min_devices` devices that can each take one even share of the model, most free first.
 * Each device is compared with its own share, never with the model's multi-device total.
 */
export const selectDevices = (
  model: ModelProfile,
  node: FleetNode,
  free: ReadonlyMap<number, number>,
): number[] | null => {
  const share = Math.ceil(model.vram_mb / model.min_devices);
  const fitting = eligibleDevices(model, node.devices)
    .map((device) => ({ index: device.index, free: free.get(device.index) ?? 0 }))
    .filter((device) => device.free >= share)
    .sort((a, b) => b.free - a.free || a.index - b.index);
  if (fitting.length < model.min_devices) return null;
  return fitting
    .slice(0, model.min_devices)
    .map((device) => device.index)
    .sort((a, b) => a - b);
};

/**
 * Idle residents this model may evict, least recently used first: loaded, no requests in flight
 * or reserved, priority at most the incoming model's, and never the incoming model itself.
 */
export const evictionCandidates = (
  model: ModelProfile,
  node: FleetNode,
  catalogue: Catalogue,
  live: LiveState | undefined,
): NeuronModel[] =>
  node.models
    .filter((resident) => {
      if (resident.id === model.id || resident.status !== "loaded") return false;
      // Busy by the same count routing uses (cortex's finished requests do not pin it), and
      // requests waiting for its load to finish count too: they are about to run on it.
      if (busyOf(replicaKey(node.name, resident.id), resident, live) > 0) return false;
      return priorityOf(catalogue, resident.id) <= model.residency_priority;
    })
    .map((resident) => ({ resident, used: modelLastUsedMs(node.name, resident, live) }))
    .sort((a, b) => a.used - b.used || (a.resident.id < b.resident.id ? -1 : 1))
    .map(({ resident }) => resident);

/**
 * Devices for the model on this node, evicting idle residents (LRU first) only as far as needed.
 * Evictions that freed nothing on the devices finally chosen are dropped from the plan.
 */
export const chooseDevices = (
  model: ModelProfile,
  node: FleetNode,
  catalogue: Catalogue,
  live: LiveState | undefined,
): DeviceChoice | null => {
  if (model.runs_on === "cpu") return { devices: [], evict: [] };
  const direct = selectDevices(model, node, effectiveFree(node));
  if (direct) return { devices: direct, evict: [] };

  const free = new Map(effectiveFree(node));
  const eligible = new Set(eligibleDevices(model, node.devices).map((device) => device.index));
  const evicted: NeuronModel[] = [];
  for (const resident of evictionCandidates(model, node, catalogue, live)) {
    if (!resident.devices.some((index) => eligible.has(index))) continue;
    const share = residentShareMb(resident);
    for (const index of resident.devices) free.set(index, (free.get(index) ?? 0) + share);
    evicted.push(resident);
    const devices = selectDevices(model, node, free);
    if (devices) {
      const chosen = new Set(devices);
      return {
        devices,
        evict: evicted.filter((resident) => resident.devices.some((index) => chosen.has(index))),
      };
    }
  }
  return null;
};

interface Option {
  readonly node: FleetNode;
  readonly choice: DeviceChoice;
  readonly free: number;
  /** The node holds the model's weights on disk: the load needs no download. */
  readonly held: boolean;
}

/**
 * A node that holds the weights first (a download is the slowest part of a cold load, and the
 * only one that can take minutes), then the highest node priority (owned GPUs before rented
 * ones), then fits without evicting, then most free memory, then name. "Pinned first" needs no
 * key of its own: `pinned_on` makes every other node infeasible, so a pinned model's options are
 * all pinned nodes and an unpinned model's options are all equal in that respect.
 */
const compareOptions = (a: Option, b: Option): number => {
  if (a.held !== b.held) return a.held ? -1 : 1;
  const priority = (b.node.priority ?? 0) - (a.node.priority ?? 0);
  if (priority !== 0) return priority;
  const aFits = a.choice.evict.length === 0;
  const bFits = b.choice.evict.length === 0;
  if (aFits !== bFits) return aFits ? -1 : 1;
  if (a.free !== b.free) return b.free - a.free;
  return a.node.name < b.node.name ? -1 : 1;
};

const listReasons = (reasons: readonly string[]): string => {
  const shown = reasons.slice(0, MAX_REASONS).join("; ");
  const more = reasons.length - MAX_REASONS;
  return more > 0 ? `${shown}; and ${more} more` : shown;
};

const reject = (code: Reject["code"], message: string, retryable: boolean): Reject => ({
  kind: "reject",
  code,
  message,
  retry_after_s: retryable ? RETRY_AFTER_S : null,
});

/**
 * Every feasible node is out: unhealthy (listed by name, as before drains existed) or taken out
 * by an operator (each with its drain), so the refusal says which and the operator knows that a
 * resume, not a repair, brings the model back. Retryable either way.
 */
const everyNodeOut = (
  id: string,
  down: readonly { readonly name: string; readonly why: string }[],
): Reject => {
  const drains = down.filter((entry) => entry.why !== "unhealthy").length;
  const state =
    drains === 0 ? "unhealthy" : drains === down.length ? "draining" : "draining or unhealthy";
  const list = down.map((entry) => (drains === 0 ? entry.name : `${entry.name} (${entry.why})`));
  return reject(
    "service_unavailable",
    `every node that can run model "${id}" is ${state}: ${listReasons(list)}`,
    true,
  );
};

/**
 * Where to cold-load a catalogue model: a feasible healthy node in service, ranked by
 * `compareOptions`. Distinguishes "no node could ever run it" (no_feasible_node, which also
 * covers a `path` source that no node holds and a `node_selector` no node's labels match, naming
 * each node checked) from "the nodes that could are down or drained" (service_unavailable) and
 * "they are up but full of busy models" (no_capacity).
 */
export const planPlacement = (
  index: FleetIndex,
  model: ModelProfile,
  catalogue: Catalogue,
  live: LiveState | undefined,
  onlyNode?: string,
  /** Nodes left out (those already holding a replica, for a scale-out). */
  skip?: ReadonlySet<string>,
): LoadPlan | Reject => {
  const all = onlyNode === undefined ? index.snapshot.nodes : [index.byNode.get(onlyNode)];
  const nodes = skip ? all.filter((node) => node === undefined || !skip.has(node.name)) : all;
  const infeasible: string[] = [];
  /** Nodes whose labels do not match the model's `node_selector`: infeasible too. */
  const unselected: FleetNode[] = [];
  /** Feasible nodes that cannot take it now: unhealthy, draining or drained. */
  const down: { readonly name: string; readonly why: string }[] = [];
  let best: Option | null = null;
  for (const node of nodes) {
    if (node === undefined)
      return reject("not_found", `node "${onlyNode}" is not in the fleet`, false);
    if (selectorMismatch(model, node) !== null) {
      unselected.push(node);
      continue;
    }
    // A `path` source is read from the node's own disk: a node known not to hold it is out.
    const why = infeasibility(model, node) ?? missingWeights(model, node);
    if (why !== null) {
      infeasible.push(`${node.name}: ${why}`);
      continue;
    }
    // Taken out by an operator: like a node that is down, until it is resumed.
    const drain = drainOf(live, node.name);
    if (drain !== undefined || !node.healthy) {
      down.push({ name: node.name, why: drain ?? "unhealthy" });
      continue;
    }
    const choice = chooseDevices(model, node, catalogue, live);
    if (choice === null) continue;
    const option: Option = {
      node,
      choice,
      free: totalFree(effectiveFree(node)),
      held: holdsWeights(model, node),
    };
    if (best === null || compareOptions(option, best) < 0) best = option;
  }
  if (best !== null) {
    return {
      node: best.node.name,
      url: best.node.url,
      devices: best.choice.devices,
      tensor_parallel: Math.max(1, best.choice.devices.length),
      evict: best.choice.evict.map((resident) => ({ node: best.node.name, model: resident.id })),
    };
  }
  const feasibleCount = nodes.length - infeasible.length - unselected.length;
  if (feasibleCount === 0) {
    const detail =
      nodes.length === 0
        ? "the fleet has no nodes"
        : infeasible.length === 0
          ? `node_selector ${formatSelector(model.node_selector ?? {})} matches no node (${listReasons(
              unselected.map((node) => `${node.name}: ${formatLabels(node.labels)}`),
            )})`
          : listReasons([
              ...infeasible,
              ...unselected.map((node) => `${node.name}: ${selectorMismatch(model, node)}`),
            ]);
    return reject("no_feasible_node", `no node can run model "${model.id}": ${detail}`, false);
  }
  if (down.length === feasibleCount) return everyNodeOut(model.id, down);
  return reject(
    "no_capacity",
    `no healthy node has room for model "${model.id}" (${model.vram_mb} MB over ${model.min_devices} device(s)): the memory is held by busy or higher-priority models`,
    true,
  );
};

export type { Eviction };
