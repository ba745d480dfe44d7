import type { Catalogue } from "@cortex/catalogue";
import type { FleetSnapshot, ModelProfile } from "@cortex/protocol";
import {
  indexSnapshot,
  inService,
  type LiveState,
  loadOf,
  modelLastUsedMs,
  planPlacement,
  replicaKey,
} from "@cortex/routing";
import type { FleetStore } from "../fleet/fleet-store.js";
import type { Log } from "../log.js";
import { servingReplicas } from "./fleet-views.js";
import type { LoadCoordinator } from "./load-coordinator.js";

/** The neuron's default `idle_ttl_s`, for catalogue models that do not set one. */
export const DEFAULT_IDLE_TTL_S = 900;

/** After a failed load for `min_replicas`, the next try waits this long, doubling per failure. */
const BACKOFF_FIRST_MS = 5_000;
const BACKOFF_MAX_MS = 300_000;

export interface ReplicaKeeperOptions {
  readonly store: FleetStore;
  readonly catalogue: () => Catalogue;
  readonly loads: LoadCoordinator;
  /** Routing's live state (reservations), to tell idle replicas from busy ones. */
  readonly live: LiveState;
  /** Unloads one replica (the model is forgotten there); rejects when the neuron refuses. */
  readonly unload: (node: string, model: string) => Promise<void>;
  /** Keeps new requests off a replica while it is unloaded; returns the undo. */
  readonly drain: (node: string, model: string) => () => void;
  readonly log: Log;
  readonly observer?: {
    scaleOut?(model: string, node: string): void;
    scaleIn?(model: string, node: string): void;
  };
  /**
   * The fleet as placement counts it (residents at their measured footprint); default: the
   * store's snapshot as it is.
   */
  readonly view?: (snapshot: FleetSnapshot) => FleetSnapshot;
  /** How often replicas are looked at besides every fleet change (default 1000 ms). */
  readonly intervalMs?: number;
  readonly now?: () => number;
}

/**
 * Keeps every catalogue model's `min_replicas` loaded without waiting for a request (on start,
 * after a node comes back, after a replica failed), placed by the usual rules on nodes that do
 * not hold one yet, so replicas spread over distinct nodes; and, for those models, unloads
 * replicas beyond the minimum once idle for their TTL, least recently used first. Their neurons
 * get `idle_ttl_s: 0` (see `toLoadRequest`): the neuron alone could not know the minimum.
 * Models with `min_replicas: 0` keep the neuron's own idle unload.
 */
export class ReplicaKeeper {
  readonly #options: ReplicaKeeperOptions;
  readonly #now: () => number;
  readonly #backoff = new Map<string, { untilMs: number; failures: number }>();
  readonly #unloading = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopReplaced: (() => void) | undefined;
  #scheduled = false;

  constructor(options: ReplicaKeeperOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    this.#timer = setInterval(() => this.tick(), this.#options.intervalMs ?? 1000);
    this.#timer.unref?.();
    // A fleet change (a node back, a replica failed or unloaded) is looked at right after it.
    this.#stopReplaced = this.#options.store.onReplaced(() => {
      if (this.#scheduled) return;
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        if (this.#timer !== undefined) this.tick();
      });
    });
    this.tick();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stopReplaced?.();
  }

  /** One look at every model with a minimum: load one replica short of it, unload one beyond. */
  tick(): void {
    const { store, view } = this.#options;
    const snapshot = view ? view(store.snapshot) : store.snapshot;
    const catalogue = this.#options.catalogue();
    for (const profile of catalogue.models) {
      if (profile.min_replicas === 0) continue;
      // A replica on a draining node serves nothing new: one is loaded elsewhere meanwhile
      // (placement never picks a draining node), and the drain, not a scale-in, unloads it.
      const serving = servingReplicas(snapshot, profile.id).filter((node) =>
        inService(this.#options.live, node.name),
      );
      if (serving.length < profile.min_replicas) this.#fill(profile, snapshot, catalogue, serving);
      else if (serving.length > profile.min_replicas) this.#trim(profile, serving);
    }
  }

  #fill(
    profile: ModelProfile,
    snapshot: FleetSnapshot,
    catalogue: Catalogue,
    serving: FleetSnapshot["nodes"],
  ): void {
    const { loads, store, log } = this.#options;
    const now = this.#now();
    const backoff = this.#backoff.get(profile.id);
    if (loads.running(profile.id) || (backoff && now < backoff.untilMs)) return;
    const holding = new Set(serving.map((node) => node.name));
    const plan = planPlacement(
      indexSnapshot(snapshot),
      profile,
      catalogue,
      this.#options.live,
      undefined,
      holding,
    );
    // No room now (busy models, no node up): the next change or tick tries again.
    if ("kind" in plan) return;
    store.emit({
      type: "scaled_out",
      at: new Date(now).toISOString(),
      node: plan.node,
      model: profile.id,
      reason: "min_replicas",
      replicas: serving.length + 1,
    });
    this.#options.observer?.scaleOut?.(profile.id, plan.node);
    log.info({ model: profile.id, node: plan.node, min: profile.min_replicas }, "min_replicas");
    loads.load(profile, plan).then(
      () => this.#backoff.delete(profile.id),
      () => {
        const failures = (this.#backoff.get(profile.id)?.failures ?? 0) + 1;
        const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (failures - 1));
        this.#backoff.set(profile.id, { untilMs: this.#now() + delay, failures });
      },
    );
  }

  #trim(profile: ModelProfile, serving: FleetSnapshot["nodes"]): void {
    const ttlMs = (profile.idle_ttl_s ?? DEFAULT_IDLE_TTL_S) * 1000;
    if (ttlMs === 0) return;
    const now = this.#now();
    const live = this.#options.live;
    let oldest: { node: string; usedMs: number } | undefined;
    for (const node of serving) {
      const key = replicaKey(node.name, profile.id);
      const replica = node.models.find((model) => model.id === profile.id);
      if (replica?.status !== "loaded" || this.#unloading.has(key)) continue;
      if (loadOf(key, replica, live) > 0) continue;
      // Its last use as routing counts it, or its load when it has not been used since.
      const usedMs = Math.max(
        modelLastUsedMs(node.name, replica, live),
        Date.parse(replica.loaded_at ?? "") || 0,
      );
      if (now - usedMs < ttlMs) continue;
      if (oldest === undefined || usedMs < oldest.usedMs) oldest = { node: node.name, usedMs };
    }
    if (oldest === undefined) return;
    void this.#scaleIn(profile.id, oldest.node, serving.length - 1);
  }

  async #scaleIn(model: string, node: string, replicas: number): Promise<void> {
    const key = replicaKey(node, model);
    this.#unloading.add(key);
    const undrain = this.#options.drain(node, model);
    try {
      await this.#options.unload(node, model);
      this.#options.store.emit({
        type: "scaled_in",
        at: new Date(this.#now()).toISOString(),
        node,
        model,
        replicas,
      });
      this.#options.observer?.scaleIn?.(model, node);
      this.#options.log.info({ model, node, replicas }, "scaled in: idle replica unloaded");
    } catch (error) {
      // Busy after all (a request reached it meanwhile) or its node is down: next time.
      this.#options.log.warn({ model, node, err: error }, "scale-in unload failed");
    } finally {
      undrain();
      this.#unloading.delete(key);
    }
  }
}
