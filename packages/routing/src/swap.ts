// The swap scheduler: what one node should do next for the requests waiting there for a model
// that fits only once busy models leave. Pure (the queue state in, the next action out), shared
// by cortex (one state per node of the fleet) and the neuron (its own host), so both collate
// requests by model and bound starvation the same way.

/** Requests waiting on one node for one model that needs residents gone first. */
export interface SwapGroup {
  readonly model: string;
  /** When the longest-waiting of them began waiting for this swap (ms, same clock as `nowMs`). */
  readonly sinceMs: number;
  /** How many wait. */
  readonly waiting: number;
  /** The residents that must leave for it to fit, as its latest placement found them. */
  readonly blockers: readonly string[];
}

/** A resident's work: requests running on it (or reserved) and requests queued for a slot. */
export interface ResidentWork {
  readonly running: number;
  readonly queued: number;
}

export interface SwapQueueState {
  readonly nowMs: number;
  /** `swap_max_wait_ms`: the longest a group waits before its blockers stop taking requests. */
  readonly maxWaitMs: number;
  readonly groups: readonly SwapGroup[];
  /** Work per resident model id; a model missing here has none. */
  readonly work: ReadonlyMap<string, ResidentWork>;
}

export type SwapAction =
  /** Nothing waits. */
  | { readonly kind: "none" }
  /**
   * The blockers have no work: evict them and load `model` now, in one plan; every request
   * queued for it proceeds (the swap serves them all, draining or not).
   */
  | {
      readonly kind: "swap";
      readonly model: string;
      readonly evict: readonly string[];
      readonly waiting: number;
      readonly waitedMs: number;
    }
  /**
   * `model` has waited `maxWaitMs`: its blockers take no new requests (those arriving wait for
   * their next turn) and the swap happens once the running ones finish. No other swap starts on
   * the node meanwhile.
   */
  | { readonly kind: "drain"; readonly model: string; readonly drain: readonly string[] }
  /** The blockers still have work: let it flow (collation) and decide again by `untilMs`. */
  | { readonly kind: "wait"; readonly model: string; readonly untilMs: number };

const NO_WORK: ResidentWork = { running: 0, queued: 0 };

/** Oldest first; a tie goes by model id so the order never depends on insertion. */
const byAge = (a: SwapGroup, b: SwapGroup): number =>
  a.sinceMs - b.sinceMs || (a.model < b.model ? -1 : a.model > b.model ? 1 : 0);

/**
 * Whether `group`'s blockers are done. A draining blocker is done when nothing runs on it (its
 * queued requests wait for their next turn); otherwise queued requests are work still to serve.
 */
const blockersIdle = (
  group: SwapGroup,
  work: ReadonlyMap<string, ResidentWork>,
  draining: boolean,
): boolean =>
  group.blockers.every((model) => {
    const { running, queued } = work.get(model) ?? NO_WORK;
    return running === 0 && (draining || queued === 0);
  });

const swapOf = (group: SwapGroup, nowMs: number): SwapAction => ({
  kind: "swap",
  model: group.model,
  evict: group.blockers,
  waiting: group.waiting,
  waitedMs: Math.max(0, nowMs - group.sinceMs),
});

/**
 * The next step for one node's swap queue:
 *
 * 1. The oldest group (by its longest wait) goes first when its blockers have no work.
 * 2. Past `maxWaitMs`, its blockers drain: they take no new requests, and no younger group may
 *    swap before it. This is the starvation bound: no request waits for a swap longer than
 *    `maxWaitMs` plus the drain and the load.
 * 3. Otherwise a younger group whose blockers have no work may go (memory idles otherwise).
 * 4. Otherwise wait: while a resident model has work, requests for it keep flowing, so requests
 *    arriving interleaved (A B C A B C) are served grouped by model, one load per model.
 */
export const nextSwap = (state: SwapQueueState): SwapAction => {
  const groups = state.groups.filter((group) => group.waiting > 0).sort(byAge);
  const oldest = groups[0];
  if (oldest === undefined) return { kind: "none" };
  const boundMs = oldest.sinceMs + state.maxWaitMs;
  const overdue = state.nowMs >= boundMs;
  if (blockersIdle(oldest, state.work, overdue)) return swapOf(oldest, state.nowMs);
  if (overdue) return { kind: "drain", model: oldest.model, drain: oldest.blockers };
  for (const group of groups.slice(1)) {
    if (blockersIdle(group, state.work, false)) return swapOf(group, state.nowMs);
  }
  return { kind: "wait", model: oldest.model, untilMs: boundMs };
};
