import { type Catalogue, resolveModelName } from "@cortex/catalogue";
import { type Abortable, unlessAborted } from "@cortex/http-kit";
import type { FleetSnapshot, NodeDrain } from "@cortex/protocol";
import {
  busyOf,
  type Decision,
  indexSnapshot,
  type LiveState,
  type LoadPlan,
  type ResidentWork,
  type RoutingRequest,
  replicaKey,
  resolve,
} from "@cortex/routing";
import { CortexError } from "../errors.js";
import type { FleetStore } from "../fleet/fleet-store.js";
import type { AdmissionQueue } from "./admission-queue.js";
import { AffinityTable, RequestAffinity } from "./affinity-table.js";
import { Circuits } from "./circuits.js";
import { EstimateWaits } from "./estimate-waits.js";
import { servingReplicas } from "./fleet-views.js";
import { type AffinityKey, type Lease, leaseOn } from "./lease.js";
import type { LoadCoordinator } from "./load-coordinator.js";
import { isEngineOutOfMemory, type MemoryGate, refusalOf } from "./memory-gate.js";
import type { Reservations } from "./reservations.js";
import { SwapQueue, type SwapTurn } from "./swap-queue.js";

type ScaleOut = NonNullable<Extract<Decision, { kind: "saturated" }>["scaleOut"]>;

/** Hooks for metrics; every one optional. */
export interface DispatchObserver {
  /** A request that waited (for a slot, a swap or a turn) got its replica after `seconds`. */
  waited?(model: string, seconds: number): void;
  swap?(model: string, node: string): void;
  scaleOut?(model: string, node: string): void;
  /** A request with an affinity key went to its conversation's replica, or spilled. */
  affinity?(model: string, outcome: "hit" | "spill"): void;
}

/** `affinity:` of cortex.yaml. */
export interface AffinitySettings {
  readonly enabled: boolean;
  readonly loadFactor: number;
  readonly ttlMs: number;
}

export interface DispatcherOptions {
  readonly store: FleetStore;
  readonly catalogue: () => Catalogue;
  readonly loads: LoadCoordinator;
  /** Where saturated requests wait; built first, as the poller and metrics read it too. */
  readonly admission: AdmissionQueue;
  /** Cortex's own requests per replica; a release should wake the model's admission queue. */
  readonly reservations: Reservations;
  /** `queue_max` and `swap_max_wait_ms`, for the swap queues. */
  readonly swapLimits: { readonly maxQueued: number; readonly maxWaitMs: number };
  readonly observer?: DispatchObserver;
  /** Conversation affinity; off when absent. */
  readonly affinity?: AffinitySettings;
  /**
   * Learnt GPU memory: requests for a model whose figure is still unknown wait for its
   * estimate, and placement counts residents at what they were measured at. Absent: routing
   * takes the catalogue and the snapshot as they are.
   */
  readonly memory?: MemoryGate;
  /** Drained nodes (NodeDrains' live view; `nodesChanged` after a change): nothing new goes there. */
  readonly nodeDrains?: ReadonlyMap<string, NodeDrain>;
  readonly now?: () => number;
}

/** The snapshot with `excluded` nodes treated as unhealthy (for a retry after a failed connect). */
const excluding = (snapshot: FleetSnapshot, excluded: ReadonlySet<string>): FleetSnapshot => ({
  ...snapshot,
  nodes: snapshot.nodes.map((node) =>
    excluded.has(node.name) && node.healthy ? { ...node, healthy: false } : node,
  ),
});

/**
 * Turns a model name into a reserved replica, acting on each routing decision: route at once,
 * wait in the admission queue while saturated (starting a scale-out when the decision carries
 * one) or while the model drains, wait in a node's swap queue while busy models hold its memory,
 * join or start the single cold load, refuse with the decision's error. Deciding and reserving
 * happen in one synchronous step, so two requests can never both take a replica's last free slot.
 */
export class Dispatcher {
  readonly reservations: Reservations;
  readonly admission: AdmissionQueue;
  /** Requests waiting for busy models to be swapped out, per node. */
  readonly swaps: SwapQueue;
  /** Reservations and draining replicas: what routing reads, live views, never copied. */
  readonly live: LiveState;
  readonly #options: DispatcherOptions;
  readonly #now: () => number;
  /** Requests waiting on a replica's load, by replica key (`live.pending`). */
  readonly #pending = new Map<string, number>();
  /** Failure memory per replica (`live.blocked`). */
  readonly circuits: Circuits;
  /** The replica each conversation used last. */
  readonly #affinity: AffinityTable | undefined;
  /** Requests waiting for the GPU memory estimate of their model. */
  readonly #estimates: EstimateWaits;

  constructor(options: DispatcherOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.admission = options.admission;
    this.reservations = options.reservations;
    this.swaps = new SwapQueue({
      ...options.swapLimits,
      retryAfterS: 2,
      work: (node, model) => this.#work(node, model),
      recheck: (node, model) => {
        const decision = this.decide(model);
        return decision.kind === "swap" && decision.node === node ? decision.blockers : null;
      },
      emit: (event) => options.store.emit(event),
      now: this.#now,
    });
    // A circuit that half-opens lets waiting requests look again.
    this.circuits = new Circuits(() => {
      this.admission.wakeEveryone();
      this.swaps.settled(false);
    }, this.#now);
    this.#affinity =
      options.affinity?.enabled === true ? new AffinityTable(options.affinity.ttlMs) : undefined;
    this.#estimates = new EstimateWaits({
      maxQueued: options.swapLimits.maxQueued,
      retryAfterS: 2,
    });
    this.live = {
      ...options.reservations.live,
      draining: this.swaps.draining,
      pending: this.#pending,
      blocked: this.circuits.blocked,
      ...(options.nodeDrains ? { nodeDrains: options.nodeDrains } : {}),
    };
    // Slots also free up when a poll shows a neuron less busy, a replica finishes loading, or
    // a node comes back: whoever waits decides again on the new snapshot.
    options.store.onReplaced(() => {
      this.admission.wakeEveryone();
      this.swaps.settled(true);
    });
  }

  /** The fleet routing decides on: the store's, as the memory counts it. */
  #snapshot(): FleetSnapshot {
    const { store, memory } = this.#options;
    return memory ? memory.view(store.snapshot) : store.snapshot;
  }

  /**
   * The GPU memory figure of `model` changed (an estimate arrived or was refused, a measurement
   * or an out-of-memory raise): requests waiting for its estimate, and the swap queues, look
   * again.
   */
  memoryChanged(model: string): void {
    this.#estimates.wake(model);
    this.swaps.settled(false);
  }

  /** A node was drained or resumed: every waiting request decides again. */
  nodesChanged(): void {
    this.admission.wakeEveryone();
    this.swaps.settled(true);
  }

  /** A reservation of `model` was released: its next waiter, and the swap queues, look again. */
  released(model: string): void {
    this.admission.wakeOne(model);
    this.swaps.settled(false);
  }

  /** The decision for `model` right now (no reservation); for admin answers and tests. */
  decide(model: string, node?: string): Decision {
    return resolve(
      this.#snapshot(),
      this.#options.catalogue(),
      node === undefined ? { model } : { model, node },
      this.live,
    );
  }

  /** Waiting requests by model: for a slot, for a turn, for a swap, or for an estimate. */
  waiting(): ReadonlyMap<string, number> {
    const counts = new Map(this.admission.depths());
    for (const depths of [this.swaps.depths(), this.#estimates.depths()])
      for (const [model, count] of depths) counts.set(model, (counts.get(model) ?? 0) + count);
    return counts;
  }

  /**
   * A resident's work as the swap scheduler weighs it: requests on it (cortex's and others'),
   * one more while it is not `loaded` yet (a load is work too), and requests waiting for a slot.
   */
  #work(node: string, model: string): ResidentWork {
    const resident = indexSnapshot(this.#options.store.snapshot)
      .byNode.get(node)
      ?.models.find((entry) => entry.id === model);
    if (!resident) return { running: 0, queued: 0 };
    const running =
      busyOf(replicaKey(node, model), resident, this.live) + (resident.status === "loaded" ? 0 : 1);
    return { running, queued: this.admission.depth(model) };
  }

  /**
   * Waits for a load of `model` on `node`, counted as pending work there meanwhile, so the
   * replica is not evicted or swapped out before its waiters reach it. The count drops in the
   * same step as the waiter decides again; the swap queues look afterwards, once every waiter
   * woken by the same load has taken its slot or its place in line.
   */
  async #awaitLoad<T>(node: string, model: string, load: Promise<T>, signal: Abortable) {
    const key = replicaKey(node, model);
    this.#pending.set(key, (this.#pending.get(key) ?? 0) + 1);
    try {
      return await unlessAborted(load, signal);
    } finally {
      const left = (this.#pending.get(key) ?? 1) - 1;
      if (left > 0) this.#pending.set(key, left);
      else this.#pending.delete(key);
      // After this waiter (and every other the same load woke) has reserved or queued: its
      // caller resumes in a later microtask than this, so only a macrotask comes after it.
      setImmediate(() => this.swaps.settled(false));
    }
  }

  /** The swap a woken request is about to carry out: its load starts now, with its evictions. */
  #swapStarted(model: string, plan: LoadPlan, turn: SwapTurn): void {
    this.#options.store.emit({
      type: "swap_started",
      at: new Date(this.#now()).toISOString(),
      node: plan.node,
      model,
      evicting: plan.evict.map((eviction) => eviction.model),
      waiting: turn.waiting,
      waited_ms: turn.waitedMs,
    });
    this.#options.observer?.swap?.(model, plan.node);
  }

  /** Loads one more replica of a saturated model, unless a load of it is under way. */
  #scaleOut({ profile, plan }: ScaleOut): void {
    const { loads, store } = this.#options;
    if (loads.running(profile.id)) return;
    const serving = servingReplicas(store.snapshot, profile.id).length;
    store.emit({
      type: "scaled_out",
      at: new Date(this.#now()).toISOString(),
      node: plan.node,
      model: profile.id,
      reason: "demand",
      replicas: serving + 1,
    });
    this.#options.observer?.scaleOut?.(profile.id, plan.node);
    // The waiting requests go to whichever replica frees first; this one's failure is logged
    // by the coordinator and changes nothing for them.
    loads.load(profile, plan).catch(() => {});
  }

  /**
   * Resolves with a lease on a replica of `model`, after waiting for a slot or a cold load if
   * needed. Rejects with a CortexError (the client's answer) or the signal's reason.
   */
  async acquire(
    model: string,
    signal: Abortable,
    excluded?: ReadonlySet<string>,
    affinityKey?: AffinityKey,
  ): Promise<Lease> {
    const { catalogue, loads } = this.#options;
    const affinity = new RequestAffinity({
      key: affinityKey,
      table: this.#affinity,
      settings: this.#options.affinity,
      model,
      catalogue,
    });
    /** When the request asked: `Lease.waitedMs` counts from here (slots, loads, swaps, turns). */
    const askedMs = this.#now();
    /** When the request first had to wait in a queue, and its deadline from then. */
    let waitedFrom: number | undefined;
    let deadline = 0;
    let ticket = 0;
    let coldStart = false;
    /** Queued for the swap that brought the model in: served while it drains for the next. */
    let turn = false;
    /** The swap this request was woken for, until its load starts (or it finds another way). */
    let swapTurn: SwapTurn | null = null;
    let swapSince: number | undefined;
    let swapReturning = false;
    let estimateReturning = false;
    /**
     * The load that failed because the engine ran out of GPU memory: the request is placed once
     * more (by the raised figure), and a refusal then quotes it.
     */
    let outOfMemory: CortexError | undefined;
    /** Waits for a load; an engine out of memory the first time means: decide again. */
    const awaitLoad = async <T>(node: string, id: string, load: Promise<T>): Promise<void> => {
      try {
        await this.#awaitLoad(node, id, load, signal);
      } catch (error) {
        if (outOfMemory !== undefined || !isEngineOutOfMemory(error)) throw error;
        outOfMemory = error;
      }
    };
    /** Before a wait: whether the request waited before (it keeps its ticket and deadline). */
    const startWaiting = (now: number): boolean => {
      if (waitedFrom !== undefined) return true;
      waitedFrom = now;
      deadline = this.admission.deadline(now);
      ticket = this.admission.ticket();
      return false;
    };
    const lease = (
      model: string,
      node: string,
      url: string,
      cold: boolean,
      now: number,
      outcome?: "hit" | "spill",
    ) => {
      if (waitedFrom !== undefined)
        this.#options.observer?.waited?.(model, (now - waitedFrom) / 1000);
      const waitedMs = Math.max(0, now - askedMs);
      affinity.served(node, outcome, now);
      return leaseOn(
        { reservations: this.reservations, circuits: this.circuits },
        { model, node, url, coldStart: cold, waitedMs },
        now,
      );
    };
    /** The routing request: the model, its turn, and the conversation's affinity. */
    const request = (snapshot: FleetSnapshot, now: number): RoutingRequest => {
      const known = affinity.in(snapshot);
      return {
        model,
        ...(turn ? { turn } : {}),
        ...(known ? { affinity: known.affinity(snapshot, now) } : {}),
      };
    };
    for (;;) {
      signal.throwIfAborted();
      const current = this.#snapshot();
      const snapshot = excluded && excluded.size > 0 ? excluding(current, excluded) : current;
      const now = this.#now();
      const decision = resolve(snapshot, catalogue(), request(snapshot, now), this.live);
      switch (decision.kind) {
        case "route":
          if (decision.affinity)
            this.#options.observer?.affinity?.(decision.model, decision.affinity);
          return lease(
            decision.model,
            decision.node,
            decision.url,
            coldStart,
            now,
            decision.affinity,
          );
        case "lazy": {
          const running = loads.running(decision.model);
          if (decision.reason === "loading" && running) {
            coldStart = true;
            await awaitLoad(decision.node, decision.model, running);
            continue;
          }
          // The neuron wakes an unloaded model (or finishes a load it started) on this request.
          return lease(
            decision.model,
            decision.node,
            decision.url,
            coldStart || decision.reason === "unloaded",
            now,
          );
        }
        case "saturated":
        case "draining": {
          if (decision.kind === "saturated" && decision.scaleOut) this.#scaleOut(decision.scaleOut);
          const returning = startWaiting(now);
          await this.admission.wait(decision.model, signal, {
            ticket,
            deadlineMs: deadline,
            nowMs: now,
            returning,
          });
          continue;
        }
        case "swap": {
          startWaiting(now);
          swapSince ??= now;
          turn = false;
          swapTurn = await this.swaps.wait(
            decision.node,
            decision.model,
            decision.blockers,
            signal,
            { ticket, sinceMs: swapSince, deadlineMs: deadline, returning: swapReturning },
          );
          swapReturning = true;
          if (swapTurn !== null) {
            turn = true;
            coldStart = true;
          }
          continue;
        }
        case "load": {
          coldStart = true;
          if (swapTurn !== null && loads.running(decision.model) === undefined)
            this.#swapStarted(decision.model, decision.plan, swapTurn);
          swapTurn = null;
          const load = loads.load(decision.profile, decision.plan);
          await awaitLoad(decision.plan.node, decision.model, load);
          continue;
        }
        case "hold":
          throw new CortexError(
            "service_unavailable",
            `model "${decision.model}" is recovering on ${decision.node} after its server stopped; retry shortly`,
            { retryAfterS: decision.retry_after_s },
          );
        case "reject": {
          const id = resolveModelName(catalogue(), model)?.id;
          const memory = id === undefined ? undefined : this.#options.memory?.status(id);
          if (id !== undefined && memory?.kind === "pending") {
            // Placing it needs its figure: wait for the estimate, within the request's deadline.
            const returning = startWaiting(now);
            await this.#estimates.wait(id, signal, {
              ticket,
              deadlineMs: deadline,
              nowMs: now,
              returning: returning || estimateReturning,
              detail: memory.detail,
            });
            estimateReturning = true;
            continue;
          }
          throw refusalOf(id ?? model, decision, memory, outOfMemory);
        }
      }
    }
  }
}
