import { effectiveFree, lastUsedMs, type Replica, replicaLoad, totalFree } from "./fleet-index.js";
import type { LiveState } from "./types.js";

export interface Pick {
  readonly replica: Replica;
  /** True when no replica has a free slot; the pick is then merely the least loaded. */
  readonly saturated: boolean;
}

const nodeFree = (replica: Replica): number => totalFree(effectiveFree(replica.node));

/**
 * A replica with a free slot first, on the highest-priority node among those with one; then
 * fewest requests (counting cortex's reservations), least recently used, most free memory on
 * the node, and node name. Because the caller records each
 * pick in `live.lastUsedMs`, equally loaded replicas take turns rather than one taking all.
 * One pass, no allocation per candidate: this runs on every request.
 */
export const pickReplica = (
  replicas: readonly Replica[],
  live: LiveState | undefined,
): Pick | null => {
  let best: Replica | undefined;
  let bestSlot = false;
  let bestPriority = 0;
  let bestLoad = 0;
  let bestUsed = 0;
  for (const replica of replicas) {
    const load = replicaLoad(replica, live);
    const slot = load < replica.model.max_concurrency;
    const used = lastUsedMs(replica, live);
    // Priority ranks only replicas with a free slot: a full one is full wherever it is.
    const priority = slot ? (replica.node.priority ?? 0) : 0;
    if (best !== undefined) {
      if (slot !== bestSlot) {
        if (!slot) continue;
      } else if (priority !== bestPriority) {
        if (priority < bestPriority) continue;
      } else if (load !== bestLoad) {
        if (load > bestLoad) continue;
      } else if (used !== bestUsed) {
        if (used > bestUsed) continue;
      } else {
        // Exact tie so far: most free memory, then name. Rare, so computed only here.
        const free = nodeFree(replica);
        const incumbent = nodeFree(best);
        if (free < incumbent) continue;
        if (free === incumbent && replica.node.name >= best.node.name) continue;
      }
    }
    best = replica;
    bestSlot = slot;
    bestPriority = priority;
    bestLoad = load;
    bestUsed = used;
  }
  return best === undefined ? null : { replica: best, saturated: !bestSlot };
};
