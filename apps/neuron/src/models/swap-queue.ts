import { type Abortable, unlessAborted } from "@cortex/http-kit";
import { nextSwap, type ResidentWork, type SwapAction, type SwapGroup } from "@cortex/routing";
import { NeuronError } from "../errors.js";
import type { TimerHandle, Timers } from "../timers.js";
import type { Admission } from "./admission.js";
import type { Log } from "./manager-deps.js";
import { type ModelEntry, trackLoading, workOf } from "./model-entry.js";

/** What the queue reads of a model: its id, status, admission and the load it shares. */
export type Swappable = Pick<ModelEntry, "status" | "admission" | "loading"> & {
  readonly spec: { readonly id: string };
};

/** The queue's side effects: the ModelManager's in the neuron, scripted fakes in tests. */
export interface SwapEffects<E extends Swappable> {
  readonly now: () => number;
  readonly timers: Timers;
  readonly log: Log;
  /** `swap_max_wait_ms`: how long a reload waits before its blockers drain. */
  readonly maxWaitMs: number;
  /** Every model the node lists. */
  readonly entries: () => readonly E[];
  /**
   * The residents that must leave for `entry` to fit, busy ones included (none when it fits
   * now). Throws insufficient_vram when even evicting every busy one would not make room.
   */
  readonly blockers: (entry: E) => readonly string[];
  /**
   * Carries a swap out: claims `entry` (loading) and the `evict`ed (unloaded, their processes
   * stopping) before it returns, then loads `entry`. The promise settles with that load.
   */
  readonly swapIn: (entry: E, evict: readonly string[]) => Promise<void>;
}

interface Waiting {
  /** When this reload began waiting for its swap. */
  readonly sinceMs: number;
  /** `POST /models/load` callers waiting with the requests. */
  joined: number;
  /** What must leave for it, as the latest evaluation found. */
  blockers: readonly string[];
  /** Ends the wait: with the load once swapped in, or with why it never will be. */
  readonly settle: (outcome: Promise<void> | NeuronError) => void;
}

/** A swap the queue started, and what came of it. */
interface Swapped {
  /** The state it was decided in (the groups, their blockers, the residents' work). */
  readonly state: string;
  /** `fruitless`: its load ended and the model is not loaded (refused, failed, undone). */
  outcome: "loading" | "fruitless";
}

const NONE: readonly string[] = [];

/**
 * The neuron's swap queue. A lazy reload that fits only once busy residents leave waits here,
 * one per model: every request for the model shares the entry's `loading`, so one swap serves
 * them all (collation). What happens next is `nextSwap`'s decision (packages/routing, pure):
 * swap now, drain the blockers (their admissions paused: running requests finish, new ones
 * wait for the model's next turn), or let their work flow until the starvation bound.
 *
 * The queue is evaluated after any event that may change that decision (a slot released, a
 * status change, a reload joining, its own timer), always in a microtask of its own: never in
 * the middle of the change that woke it, and many wakes in one turn make one evaluation.
 */
export class SwapQueue<E extends Swappable> {
  readonly #fx: SwapEffects<E>;
  readonly #waiting = new Map<E, Waiting>();
  /** The admissions this queue paused for a drain, by model. */
  readonly #paused = new Map<E, Admission>();
  #timer: TimerHandle | null = null;
  #scheduled = false;
  #closed = false;
  /** Per model, its swap under way or its last one that came to nothing; see #swap. */
  readonly #swapped = new WeakMap<E, Swapped>();

  constructor(effects: SwapEffects<E>) {
    this.#fx = effects;
  }

  /** Whether a reload of `entry` waits here for its swap (it has not started loading yet). */
  holds(entry: E): boolean {
    return this.#waiting.has(entry);
  }

  /**
   * A lazy reload of the `unloaded` `entry`: from now its `loading` settles with the load once
   * the queue swaps it in. Throws insufficient_vram, changing nothing, when no wait could ever
   * make room (the memory is held by models of higher priority, or the device is too small).
   */
  request(entry: E): void {
    if (this.#closed || this.#waiting.has(entry)) return;
    const blockers = this.#fx.blockers(entry);
    let settle: Waiting["settle"] = () => {};
    const reload = new Promise<void>((resolve, reject) => {
      settle = (outcome) => (outcome instanceof NeuronError ? reject(outcome) : resolve(outcome));
    });
    this.#waiting.set(entry, { sinceMs: this.#fx.now(), joined: 0, blockers, settle });
    trackLoading(entry, reload);
    if (blockers.length > 0)
      this.#fx.log.info({ model: entry.spec.id, blockers }, "lazy reload waits for a swap");
    this.wake();
  }

  /**
   * What a request awaits for `entry`'s load. While the reload still waits in this queue the
   * wait ends at `deadlineMs` with 504 queue_timeout (the request's queue limit); once swapped
   * in, the load itself is waited for as any load is. A caller that gives up leaves at once.
   */
  wait(entry: E, signal: Abortable | undefined, deadlineMs: number): Promise<void> {
    const loading = entry.loading ?? Promise.resolve();
    const waiting = this.#waiting.get(entry);
    if (!waiting) return unlessAborted(loading, signal);
    // One more waits: a swap held in the state before (see #swap) may go now.
    this.wake();
    return new Promise<void>((resolve, reject) => {
      const timer = this.#fx.timers.set(
        () => {
          // Swapped in meanwhile: the load is under way and no longer a queue wait.
          if (this.#waiting.get(entry) !== waiting) return;
          reject(
            new NeuronError(
              "queue_timeout",
              `model "${entry.spec.id}": busy models (${waiting.blockers.join(", ")}) still hold its memory; no swap made room for it within the queue timeout`,
              { retryAfterS: 1 },
            ),
          );
        },
        Math.max(0, deadlineMs - this.#fx.now()),
      );
      unlessAborted(loading, signal)
        .then(resolve, reject)
        .finally(() => this.#fx.timers.clear(timer));
    });
  }

  /** A `POST /models/load` joins the reload waiting here: the swap waits for it too. */
  async join(entry: E): Promise<void> {
    const waiting = this.#waiting.get(entry);
    if (!waiting) return entry.loading ?? undefined;
    waiting.joined += 1;
    try {
      await entry.loading;
    } finally {
      waiting.joined -= 1;
      this.wake();
    }
  }

  /** Takes `entry`'s reload out of the queue (a forced unload): whoever waits gets `error`. */
  withdraw(entry: E, error: NeuronError): void {
    const waiting = this.#waiting.get(entry);
    if (!waiting) return;
    this.#waiting.delete(entry);
    waiting.settle(error);
    this.wake();
  }

  /** Shutdown: every reload waiting here fails with `error`, and every drain ends. */
  close(error: NeuronError): void {
    this.#closed = true;
    for (const entry of [...this.#waiting.keys()]) this.withdraw(entry, error);
    this.#clearTimer();
    this.#drainOnly(NONE, new Map());
  }

  /**
   * `entry`'s status changed (its load began or ended, it idled out, crashed, was swapped out):
   * a swap of it that came to nothing may be tried again. Then as `wake`.
   */
  changed(entry: E | undefined): void {
    if (entry && this.#swapped.get(entry)?.outcome === "fruitless") this.#swapped.delete(entry);
    this.wake();
  }

  /** Something changed that may change the decision: evaluate once, in a microtask. */
  wake(): void {
    if (this.#scheduled || this.#closed) return;
    // The hot path (every request's end) costs nothing while no reload waits.
    if (this.#waiting.size === 0 && this.#paused.size === 0) return;
    this.#scheduled = true;
    void Promise.resolve().then(() => {
      this.#scheduled = false;
      if (!this.#closed) this.#evaluate();
    });
  }

  #evaluate(): void {
    this.#clearTimer();
    const byId = new Map(this.#fx.entries().map((entry) => [entry.spec.id, entry]));
    const groups = this.#groups();
    const work = new Map<string, ResidentWork>();
    for (const entry of byId.values()) {
      if (entry.status === "loaded" || entry.status === "loading")
        work.set(entry.spec.id, workOf(entry));
    }
    const nowMs = this.#fx.now();
    const action = nextSwap({ nowMs, maxWaitMs: this.#fx.maxWaitMs, groups, work });
    this.#act(action, groups, work, byId, nowMs);
  }

  /**
   * The waiting reloads as `nextSwap` takes them, their blockers planned afresh. A reload
   * nobody waits for any more leaves (its requests timed out or went away), and one that could
   * now never fit fails with insufficient_vram.
   */
  #groups(): SwapGroup[] {
    const groups: SwapGroup[] = [];
    for (const [entry, waiting] of [...this.#waiting]) {
      const count = entry.admission.inFlight + waiting.joined;
      const blockers =
        count === 0
          ? new NeuronError(
              "service_unavailable",
              `model "${entry.spec.id}": nobody waits for its reload any more`,
            )
          : this.#blockersOf(entry);
      if (blockers instanceof NeuronError) {
        this.#waiting.delete(entry);
        waiting.settle(blockers);
        if (count > 0)
          this.#fx.log.warn({ model: entry.spec.id, err: blockers }, "lazy reload can never fit");
        continue;
      }
      waiting.blockers = blockers;
      groups.push({ model: entry.spec.id, sinceMs: waiting.sinceMs, waiting: count, blockers });
    }
    return groups;
  }

  #blockersOf(entry: E): readonly string[] | NeuronError {
    try {
      return this.#fx.blockers(entry);
    } catch (error) {
      return error instanceof NeuronError
        ? error
        : new NeuronError("internal_error", `model "${entry.spec.id}": swap planning failed`);
    }
  }

  #act(
    action: SwapAction,
    groups: readonly SwapGroup[],
    work: ReadonlyMap<string, ResidentWork>,
    byId: ReadonlyMap<string, E>,
    nowMs: number,
  ): void {
    let drain = NONE;
    if (action.kind === "swap") {
      const state = groups.map((group) => [group.model, group.waiting, group.blockers]);
      this.#swap(action, byId, JSON.stringify([state, [...work]]));
    } else {
      if (action.kind === "drain") drain = action.drain;
      if (action.kind === "wait") {
        this.#timer = this.#fx.timers.set(
          () => {
            this.#timer = null;
            if (!this.#closed) this.#evaluate();
          },
          Math.max(0, action.untilMs - nowMs),
        );
      }
    }
    this.#drainOnly(drain, byId);
  }

  /**
   * Starts the swap `nextSwap` chose, unless the model's previous swap is still loading, or came
   * to nothing in this very state with no status change of the model since: a reload that comes
   * straight back (its load refused at once, say) then waits for something to change (a
   * request, a release, a status) instead of swapping again and again without the event loop
   * ever turning.
   */
  #swap(
    action: Extract<SwapAction, { kind: "swap" }>,
    byId: ReadonlyMap<string, E>,
    state: string,
  ): void {
    const entry = byId.get(action.model);
    const waiting = entry && this.#waiting.get(entry);
    if (!entry || !waiting) return;
    const before = this.#swapped.get(entry);
    if (before?.outcome === "loading" || before?.state === state) {
      this.#fx.log.warn({ model: action.model }, "swap held: its last one came to nothing");
      return;
    }
    this.#waiting.delete(entry);
    this.#fx.log.info(
      {
        model: action.model,
        evict: action.evict,
        waiting: action.waiting,
        waited_ms: action.waitedMs,
      },
      "swap started",
    );
    // Every request queued for it proceeds, even if it drains next for the swap after.
    entry.admission.grantTurns();
    const swapped: Swapped = { state, outcome: "loading" };
    this.#swapped.set(entry, swapped);
    let load: Promise<void>;
    try {
      load = this.#fx.swapIn(entry, action.evict);
    } catch (error) {
      load = Promise.reject(
        error instanceof NeuronError
          ? error
          : new NeuronError("internal_error", `model "${action.model}": the swap failed`),
      );
    }
    const ended = () => {
      if (entry.status === "loaded") this.#swapped.delete(entry);
      else swapped.outcome = "fruitless";
      this.wake();
    };
    load.then(ended, ended);
    waiting.settle(load);
    // Another reload may fit beside it, or be next: decide again once this one is claimed.
    this.wake();
  }

  /**
   * Pauses the admissions of `ids` and resumes every other this queue paused. Resuming comes
   * last: a resumed model that was just swapped out is `unloaded` by then, so its queued
   * requests ask for its reload, which joins this queue in turn.
   */
  #drainOnly(ids: readonly string[], byId: ReadonlyMap<string, E>): void {
    const wanted = new Set(ids.flatMap((id) => byId.get(id) ?? []));
    for (const entry of wanted) {
      if (this.#paused.has(entry)) continue;
      this.#paused.set(entry, entry.admission);
      entry.admission.pause();
      this.#fx.log.info({ model: entry.spec.id }, "draining for a swap");
    }
    for (const [entry, admission] of [...this.#paused]) {
      if (wanted.has(entry)) continue;
      this.#paused.delete(entry);
      admission.resume();
    }
  }

  #clearTimer(): void {
    if (this.#timer) this.#fx.timers.clear(this.#timer);
    this.#timer = null;
  }
}
