import type { FleetNode, NodeDrain } from "@cortex/protocol";
import { busyOf, type LiveState, replicaKey } from "@cortex/routing";

// A drain's two pure halves: what its node needs done now, and which moves between drain
// states exist. NodeDrains (drains.ts) carries them out.

/** Where a node stands: in service, or one of the drain states. */
export type DrainPhase = "serving" | NodeDrain;

/**
 * The one table of moves: a drain starts from service; a draining node becomes drained once
 * nothing is resident; a drained node drains again when a model shows up on it (a neuron's own
 * preload after a restart); a resume returns either to service.
 */
export const DRAIN_MOVES: Readonly<Record<DrainPhase, readonly DrainPhase[]>> = {
  serving: ["draining"],
  draining: ["drained", "serving"],
  drained: ["draining", "serving"],
};

export const canMove = (from: DrainPhase, to: DrainPhase): boolean =>
  DRAIN_MOVES[from].includes(to);

/** What a drain has left to do on its node, from the snapshot and cortex's live counts. */
export interface DrainWork {
  /** Idle residents to unload now (nothing in flight, queued, reserved or waiting on a load). */
  readonly unload: readonly string[];
  /** Residents still busy (or loading): they are waited for, and unloaded once idle. */
  readonly busy: readonly string[];
  /** Nothing resident: the node is drained. */
  readonly empty: boolean;
}

/**
 * Sorts the node's resident models (loading, loaded, recovering) into those to unload now and
 * those to wait for. A model is busy while cortex holds reservations on it or requests wait for
 * its load (`busyOf`), or while its neuron reports requests that are not cortex's (other
 * clients of the neuron, and cortex's own until the next poll); a model still loading is waited
 * for too (its load finishes, then it unloads). Idle-unloaded and failed entries hold no memory
 * and take no request while the node is out, so they are left as they are.
 */
export const drainWork = (node: FleetNode, live: LiveState | undefined): DrainWork => {
  const unload: string[] = [];
  const busy: string[] = [];
  for (const model of node.models) {
    if (model.status === "unloaded" || model.status === "failed") continue;
    const working =
      model.status === "loading" || busyOf(replicaKey(node.name, model.id), model, live) > 0;
    (working ? busy : unload).push(model.id);
  }
  return { unload, busy, empty: unload.length === 0 && busy.length === 0 };
};
