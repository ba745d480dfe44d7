import type { Catalogue } from "@cortex/catalogue/rules";
import { eligibleDevices, infeasibility } from "@cortex/catalogue/rules";
import type { FleetNode, ModelProfile, NeuronModel } from "@cortex/protocol";
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
import { inService, selectorMatches } from "./node-fit.js";
import { priorityOf, selectDevices } from "./placement.js";
import type { LiveState } from "./types.js";

/** Where a model could go once busy residents leave: the node's swap queue is where it waits. */
export interface SwapPlan {
  readonly node: string;
  readonly url: string;
  /** The residents that must leave (busy ones among them), as far as this placement sees. */
  readonly blockers: readonly string[];
}

/** Statuses a swap may wait out: a loading model will be loaded, then drain like any other. */
const SWAPPABLE = new Set<NeuronModel["status"]>(["loaded", "loading"]);

interface Blocked {
  readonly blockers: readonly string[];
  /** Requests on the busy blockers: the fewer, the sooner the swap. */
  readonly work: number;
}

/**
 * The residents of `node` that must leave for `model` to fit, evicting idle ones first (least
 * recently used first), then busy ones (least work first), only priority ≤ the model's, and only
 * those on the devices finally chosen. Null when even that would not make room.
 */
export const swapBlockers = (
  model: ModelProfile,
  node: FleetNode,
  catalogue: Catalogue,
  live: LiveState | undefined,
): Blocked | null => {
  if (model.runs_on === "cpu") return null;
  const eligible = new Set(eligibleDevices(model, node.devices).map((device) => device.index));
  const candidates = node.models
    .filter(
      (resident) =>
        resident.id !== model.id &&
        SWAPPABLE.has(resident.status) &&
        priorityOf(catalogue, resident.id) <= model.residency_priority &&
        resident.devices.some((index) => eligible.has(index)),
    )
    .map((resident) => ({
      resident,
      // A model still loading counts as busy: it will serve what waits for it first.
      work:
        busyOf(replicaKey(node.name, resident.id), resident, live) +
        (resident.status === "loaded" ? 0 : 1),
      used: modelLastUsedMs(node.name, resident, live),
    }))
    .sort((a, b) => a.work - b.work || a.used - b.used || (a.resident.id < b.resident.id ? -1 : 1));
  const free = new Map(effectiveFree(node));
  const taken: (typeof candidates)[number][] = [];
  for (const candidate of candidates) {
    const share = residentShareMb(candidate.resident);
    for (const index of candidate.resident.devices) free.set(index, (free.get(index) ?? 0) + share);
    taken.push(candidate);
    const devices = selectDevices(model, node, free);
    if (devices) {
      const chosen = new Set(devices);
      const needed = taken.filter(({ resident }) => resident.devices.some((i) => chosen.has(i)));
      return {
        blockers: needed.map(({ resident }) => resident.id),
        work: needed.reduce((sum, { work }) => sum + work, 0),
      };
    }
  }
  return null;
};

interface SwapOption {
  readonly node: FleetNode;
  readonly blocked: Blocked;
  readonly free: number;
  /** The node holds the model's weights on disk: the load after the swap needs no download. */
  readonly held: boolean;
}

/**
 * A node holding the weights first (as for any cold load), then highest node priority, then
 * least work to wait out, then most free memory, then name.
 */
const compareSwaps = (a: SwapOption, b: SwapOption): number =>
  Number(b.held) - Number(a.held) ||
  (b.node.priority ?? 0) - (a.node.priority ?? 0) ||
  a.blocked.work - b.blocked.work ||
  b.free - a.free ||
  (a.node.name < b.node.name ? -1 : a.node.name > b.node.name ? 1 : 0);

/**
 * The node where `model` waits for a swap: a feasible healthy node in service (its labels
 * matching the model's `node_selector`, not drained) where evicting busy models of
 * priority ≤ its own would make room, ranked by `compareSwaps`. Null when no node could hold it
 * even then (memory held by higher priorities).
 */
export const planSwap = (
  index: FleetIndex,
  model: ModelProfile,
  catalogue: Catalogue,
  live: LiveState | undefined,
  onlyNode?: string,
): SwapPlan | null => {
  let best: SwapOption | null = null;
  for (const node of index.snapshot.nodes) {
    if (onlyNode !== undefined && node.name !== onlyNode) continue;
    if (!node.healthy || !inService(live, node.name) || !selectorMatches(model, node)) continue;
    if (infeasibility(model, node) !== null) continue;
    if (missingWeights(model, node) !== null) continue;
    const blocked = swapBlockers(model, node, catalogue, live);
    if (blocked === null) continue;
    const option = {
      node,
      blocked,
      free: totalFree(effectiveFree(node)),
      held: holdsWeights(model, node),
    };
    if (best === null || compareSwaps(option, best) < 0) best = option;
  }
  return best && { node: best.node.name, url: best.node.url, blockers: best.blocked.blockers };
};
