import type { Abortable } from "@cortex/http-kit";
import { type FleetEvent, MAX_TIMER_MS } from "@cortex/protocol";
import { nextSwap, type ResidentWork, replicaKey, type SwapAction } from "@cortex/routing";
import { CortexError } from "../errors.js";
import { type LineWaiter, waitInLine } from "./waiting-line.js";

/** Swaps of one model on one node before the fleet must have changed (see `#decide`). */
const MAX_SWAPS_UNCHANGED = 3;

/** Woken with its turn when its swap came, or null to decide again. */
interface Waiter extends LineWaiter<SwapTurn | null> {
  readonly sinceMs: number;
}

interface Group {
  /** Residents of the node that must leave, from the newest decision of a request in it. */
  blockers: readonly string[];
  readonly waiters: Waiter[];
}

export interface SwapQueueOptions {
  /** Requests that may wait per node for swaps; one more is refused with 503 `overloaded`. */
  readonly maxQueued: number;
  /** `swap_max_wait_ms`: the starvation bound (see `nextSwap`). */
  readonly maxWaitMs: number;
  readonly retryAfterS: number;
  /** The work of a resident model on a node now (requests reserved, reported, queued). */
  readonly work: (node: string, model: string) => ResidentWork;
  /**
   * Decides again for `model` on the current fleet: its blockers when it still waits for a swap
   * on `node`, null when something else applies now (memory came free elsewhere, the model was
   * loaded, the node went away): then its requests are woken to act on that.
   */
  readonly recheck: (node: string, model: string) => readonly string[] | null;
  readonly emit: (event: FleetEvent) => void;
  readonly now?: () => number;
}

/**
 * What a request woken by its swap holds: the scheduler's reasons, for the `swap_started` event
 * that whoever starts the swap's load announces (a swap whose requests find another way, or come
 * back, started nothing and is announced by nobody).
 */
export interface SwapTurn {
  readonly node: string;
  readonly waiting: number;
  readonly waitedMs: number;
}

export interface SwapWait {
  readonly ticket: number;
  /** When the request began waiting for a swap (kept across re-decisions). */
  readonly sinceMs: number;
  /** Its overall deadline (queue_timeout_ms from its first wait). */
  readonly deadlineMs: number;
  /** It waited in this queue before (no `overloaded` refusal, no new `swap_queued` event). */
  readonly returning: boolean;
}

/**
 * Per-node queues of requests waiting for a model that fits only once busy models leave. The
 * swap scheduler (`nextSwap`, pure, in packages/routing) decides per node, on every change that
 * could matter (a request joined, a slot was released, the fleet changed, the bound passed),
 * whether the oldest model's blockers drain and which waiting model swaps in. A swap wakes
 * every request queued for that model, each holding its turn; they then decide again, and the
 * blockers, idle now, are evicted by the usual cold-load plan (evictions and load in one plan).
 * Waking is only a pause's end: a woken request that still finds its model blocked waits again
 * with its ticket and its `sinceMs`.
 */
export class SwapQueue {
  readonly #options: SwapQueueOptions;
  readonly #now: () => number;
  /** node → model → group. */
  readonly #nodes = new Map<string, Map<string, Group>>();
  /** Replica keys draining now (what routing reads through `live.draining`). */
  readonly #draining = new Set<string>();
  /** Replicas drained by someone else (a scale-in under way), with how many hold each. */
  readonly #held = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #evaluating = false;
  #again = false;
  /** Swaps fired per node and model since the fleet last changed: a guard against a loop. */
  readonly #fired = new Map<string, number>();

  constructor(options: SwapQueueOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Replicas that take no new requests: their model's swap-out is due. A live view. */
  get draining(): ReadonlySet<string> {
    return this.#draining;
  }

  /** Keeps new requests off a replica (its scale-in is under way) until the undo is called. */
  drainReplica(node: string, model: string): () => void {
    const key = replicaKey(node, model);
    this.#held.set(key, (this.#held.get(key) ?? 0) + 1);
    this.#draining.add(key);
    let undone = false;
    return () => {
      if (undone) return;
      undone = true;
      const left = (this.#held.get(key) ?? 1) - 1;
      if (left > 0) this.#held.set(key, left);
      else this.#held.delete(key);
      this.changed();
    };
  }

  /** Waiting requests by model, every node together. */
  depths(): ReadonlyMap<string, number> {
    const depths = new Map<string, number>();
    for (const groups of this.#nodes.values())
      for (const [model, group] of groups)
        depths.set(model, (depths.get(model) ?? 0) + group.waiters.length);
    return depths;
  }

  /**
   * Waits on `node` until `model`'s swap comes (resolves with the turn the request now holds)
   * or the fleet changed and it should decide again (null). Rejects with 503 `overloaded` when the
   * node's line is full (new arrivals only), 504 `queue_timeout` at the deadline, or the
   * signal's reason; a rejected waiter has always left the line.
   */
  wait(
    node: string,
    model: string,
    blockers: readonly string[],
    signal: Abortable,
    options: SwapWait,
  ): Promise<SwapTurn | null> {
    const nowMs = this.#now();
    let groups = this.#nodes.get(node);
    let waiting = 0;
    for (const group of groups?.values() ?? []) waiting += group.waiters.length;
    if (!options.returning && waiting >= this.#options.maxQueued) {
      return Promise.reject(
        new CortexError(
          "overloaded",
          `${this.#options.maxQueued} requests already wait on node ${node} for busy models to be swapped out; retry shortly`,
          { retryAfterS: this.#options.retryAfterS },
        ),
      );
    }
    if (signal.aborted) return Promise.reject(signal.reason);
    if (!groups) {
      groups = new Map();
      this.#nodes.set(node, groups);
    }
    let group = groups.get(model);
    // One event per model starting to wait on the node, not one per request.
    const announce = group === undefined && !options.returning;
    if (!group) {
      group = { blockers, waiters: [] };
      groups.set(model, group);
    }
    group.blockers = blockers;
    if (announce) {
      this.#options.emit({
        type: "swap_queued",
        at: new Date(nowMs).toISOString(),
        node,
        model,
        blockers: [...blockers],
      });
    }
    const line = group;
    const lines = groups;
    const promise = waitInLine<SwapTurn | null, Waiter>(
      line.waiters,
      (wake) => ({ ticket: options.ticket, sinceMs: options.sinceMs, wake }),
      signal,
      {
        deadlineMs: options.deadlineMs,
        nowMs,
        timeout: () =>
          new CortexError(
            "queue_timeout",
            `model "${model}" waited for busy models on ${node} to be swapped out until its queue timeout; retry later`,
            { retryAfterS: this.#options.retryAfterS },
          ),
        left: () => {
          if (line.waiters.length === 0 && lines.get(model) === line) lines.delete(model);
          if (lines.size === 0 && this.#nodes.get(node) === lines) this.#nodes.delete(node);
        },
        gaveUp: () => this.changed(),
      },
    );
    this.changed();
    return promise;
  }

  /**
   * Something that may matter changed (a slot was released, the fleet was replaced, a request
   * joined or left): every node's scheduler decides again. Re-entrant calls are folded into
   * one more pass.
   */
  changed(): void {
    if (this.#evaluating) {
      this.#again = true;
      return;
    }
    this.#evaluating = true;
    try {
      do {
        this.#again = false;
        this.#evaluate();
      } while (this.#again);
    } finally {
      this.#evaluating = false;
    }
  }

  /**
   * A slot was released or the fleet was replaced. With `fleet`, every group is decided again
   * first (`recheck`): one whose swap no longer applies is woken to act on what does.
   */
  settled(fleet: boolean): void {
    this.#fired.clear();
    if (fleet) {
      for (const [node, groups] of [...this.#nodes]) {
        for (const [model, group] of [...groups]) {
          const blockers = this.#options.recheck(node, model);
          if (blockers !== null) group.blockers = blockers;
          else for (const waiter of [...group.waiters]) waiter.wake(null);
        }
      }
    }
    this.changed();
  }

  #evaluate(): void {
    const nowMs = this.#now();
    const draining = new Set<string>();
    let soonest = Number.POSITIVE_INFINITY;
    for (const [node, groups] of [...this.#nodes]) {
      const action = this.#decide(node, groups, nowMs);
      if (action.kind === "swap") {
        const group = groups.get(action.model);
        const turn: SwapTurn = { node, waiting: action.waiting, waitedMs: action.waitedMs };
        // The blockers are about to be evicted: nothing new may land on them meanwhile (a
        // request woken for a slot there would otherwise take one before the swap's requests
        // decide, and the swap would find them busy again).
        for (const blocker of action.evict) draining.add(replicaKey(node, blocker));
        // The woken decide in their own turn: their load (or their coming back) changes the
        // fleet or this queue, and the node is looked at again then.
        for (const waiter of [...(group?.waiters ?? [])]) waiter.wake(turn);
      } else if (action.kind === "drain") {
        for (const blocker of action.drain) draining.add(replicaKey(node, blocker));
      } else if (action.kind === "wait") {
        soonest = Math.min(soonest, action.untilMs);
      }
    }
    this.#draining.clear();
    for (const key of draining) this.#draining.add(key);
    for (const key of this.#held.keys()) this.#draining.add(key);
    this.#arm(soonest, nowMs);
  }

  #decide(node: string, groups: ReadonlyMap<string, Group>, nowMs: number): SwapAction {
    const action = this.#schedule(node, groups, nowMs);
    if (action.kind !== "swap") return action;
    // A swap whose requests come straight back, with nothing changed in between, would be
    // fired again at once: after a few, wait for a change instead of spinning.
    const key = replicaKey(node, action.model);
    const fired = (this.#fired.get(key) ?? 0) + 1;
    this.#fired.set(key, fired);
    return fired > MAX_SWAPS_UNCHANGED
      ? { kind: "wait", model: action.model, untilMs: Number.POSITIVE_INFINITY }
      : action;
  }

  #schedule(node: string, groups: ReadonlyMap<string, Group>, nowMs: number): SwapAction {
    const work = new Map<string, ResidentWork>();
    const list = [...groups].map(([model, group]) => {
      for (const blocker of group.blockers)
        if (!work.has(blocker)) work.set(blocker, this.#options.work(node, blocker));
      return {
        model,
        sinceMs: Math.min(...group.waiters.map((waiter) => waiter.sinceMs)),
        waiting: group.waiters.length,
        blockers: group.blockers,
      };
    });
    return nextSwap({ nowMs, maxWaitMs: this.#options.maxWaitMs, groups: list, work });
  }

  /** One timer, for the earliest bound still ahead. */
  #arm(atMs: number, nowMs: number): void {
    if (atMs === this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = atMs;
    if (atMs === Number.POSITIVE_INFINITY) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = Number.POSITIVE_INFINITY;
        this.changed();
      },
      Math.min(MAX_TIMER_MS, Math.max(0, atMs - nowMs)),
    );
    this.#timer.unref?.();
  }

  /** Stops the timer (cortex stopping); waiters end with their requests. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }
}
