import type {
  Eviction,
  LoadAnswer,
  LoadProgress,
  LoadRequest,
  ModelProfile,
  UnloadAnswer,
} from "@cortex/protocol";
import {
  applyLoadPlan,
  type LoadPlan,
  rewriteLoopback,
  toLoadRequest,
  withModelStatus,
  withoutModel,
} from "@cortex/routing";
import type { ApplyOwn, FleetStore } from "../fleet/fleet-store.js";
import type { Log } from "../log.js";
import { fromNeuron, isGone } from "../neurons/neuron-errors.js";
import { isEngineOutOfMemory } from "./memory-gate.js";

/** What the coordinator needs of a neuron client. */
export interface LoadClient {
  load(
    request: LoadRequest,
    options: { timeoutMs: number; onProgress?: (progress: LoadProgress) => void },
  ): Promise<LoadAnswer>;
  unload(
    request: { model_id: string; force?: boolean },
    options?: { timeoutMs?: number },
  ): Promise<UnloadAnswer>;
}

/** Hooks for metrics; every one optional. */
export interface LoadObserver {
  load?(model: string, node: string, outcome: "success" | "failure", seconds: number): void;
  eviction?(model: string, node: string): void;
}

export interface LoadedModel {
  readonly model: string;
  readonly node: string;
  /** The model's inference base URL as cortex reaches it (loopback hosts rewritten). */
  readonly url: string;
  readonly loadMs: number;
  readonly alreadyLoaded: boolean;
  readonly evicted: readonly Eviction[];
}

export interface LoadCoordinatorOptions {
  readonly store: FleetStore;
  readonly client: (node: string) => LoadClient;
  readonly loadTimeoutMs: number;
  readonly log: Log;
  /** Asks the poller for a fresh look at a node after a surprise (a failed load or unload). */
  readonly refresh?: (node: string) => void;
  readonly observer?: LoadObserver;
  /**
   * A load failed because the engine ran out of GPU memory while starting (`message` quotes its
   * line): called before the load's waiters see the failure, so the figure they place by next
   * is already raised.
   */
  readonly onOutOfMemory?: (profile: ModelProfile, node: string, message: string) => void;
  readonly now?: () => number;
}

/**
 * Cold loads, one at a time per model: every request (and operator) asking for a model while
 * its load runs waits on that same load, and all of them see the same result. Cortex's view of
 * the fleet changes at once: evicted models leave the snapshot before their neuron is asked to
 * unload them, and the new model shows as `loading` (holding its memory) until the neuron
 * answers, so no request is ever routed to a model being evicted or to memory just promised.
 */
export class LoadCoordinator {
  readonly #options: LoadCoordinatorOptions;
  readonly #running = new Map<string, { node: string; promise: Promise<LoadedModel> }>();
  readonly #now: () => number;

  constructor(options: LoadCoordinatorOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The load of `model` under way, if any. */
  running(model: string): Promise<LoadedModel> | undefined {
    return this.#running.get(model)?.promise;
  }

  /** The node the load of `model` under way goes to, if any. */
  runningOn(model: string): string | undefined {
    return this.#running.get(model)?.node;
  }

  /** Loads `profile` per `plan`, or joins the load of that model already under way. */
  load(profile: ModelProfile, plan: LoadPlan): Promise<LoadedModel> {
    const existing = this.#running.get(profile.id);
    if (existing) return existing.promise;
    const running = this.#run(profile, plan).finally(() => {
      this.#running.delete(profile.id);
    });
    this.#running.set(profile.id, { node: plan.node, promise: running });
    // Joiners observe the failure; an unobserved one must not crash the process.
    running.catch(() => {});
    return running;
  }

  async #run(profile: ModelProfile, plan: LoadPlan): Promise<LoadedModel> {
    const { store, log, observer } = this.#options;
    const started = this.#now();
    const at = () => new Date(this.#now()).toISOString();
    const client = this.#options.client(plan.node);
    store.emit({
      type: "load_started",
      at: at(),
      node: plan.node,
      model: profile.id,
      evicting: [...plan.evict],
    });
    log.info({ model: profile.id, node: plan.node, evict: plan.evict }, "cold load");
    // From here the snapshot shows the plan done: evictions gone, the model loading; and polls
    // of the node leave its models alone until the plan has run.
    try {
      return await store.own(plan.node, async (apply) => {
        apply((snapshot) => applyLoadPlan(snapshot, profile, plan));
        try {
          return await this.#carryOut(profile, plan, client, apply, started);
        } catch (error) {
          const failure = fromNeuron(error, "load", profile.id, plan.node);
          apply((snapshot) => withoutModel(snapshot, plan.node, profile.id));
          if (isEngineOutOfMemory(failure))
            this.#options.onOutOfMemory?.(profile, plan.node, failure.message);
          observer?.load?.(profile.id, plan.node, "failure", (this.#now() - started) / 1000);
          store.emit({
            type: "load_failed",
            at: at(),
            node: plan.node,
            model: profile.id,
            error: failure.message,
          });
          log.warn({ model: profile.id, node: plan.node, err: failure.message }, "load failed");
          throw failure;
        }
      });
    } catch (error) {
      // What really happened on the node (an eviction that did not happen, a half load) comes
      // back with the next poll; ask for it now rather than in a full interval (and after the
      // plan's scope ended, so that poll's answer is taken).
      this.#options.refresh?.(plan.node);
      throw error;
    }
  }

  /** The plan's steps on the neurons: evictions, then the load. */
  async #carryOut(
    profile: ModelProfile,
    plan: LoadPlan,
    client: LoadClient,
    apply: ApplyOwn,
    started: number,
  ): Promise<LoadedModel> {
    const { store, log, observer } = this.#options;
    const at = () => new Date(this.#now()).toISOString();
    for (const eviction of plan.evict) {
      try {
        await this.#options
          .client(eviction.node)
          .unload({ model_id: eviction.model }, { timeoutMs: this.#options.loadTimeoutMs });
      } catch (error) {
        // Already gone (unloaded by hand since the last poll): the memory is free all the same.
        if (!isGone(error)) throw fromNeuron(error, "evict", eviction.model, eviction.node);
      }
      observer?.eviction?.(eviction.model, eviction.node);
      store.emit({ type: "evicted", at: at(), node: eviction.node, model: eviction.model });
    }
    let answer: LoadAnswer;
    try {
      answer = await client.load(toLoadRequest(profile, plan), {
        timeoutMs: this.#options.loadTimeoutMs,
        onProgress: (progress) =>
          store.emit({
            type: "load_progress",
            at: at(),
            node: plan.node,
            model: profile.id,
            phase: progress.phase,
            bytes: progress.bytes,
            total: progress.total,
          }),
      });
    } catch (error) {
      throw fromNeuron(error, "load", profile.id, plan.node);
    }
    // Re-insert rather than only flip the status: a poll that reached the neuron before the
    // load did may have dropped the `loading` entry meanwhile.
    apply((snapshot) =>
      withModelStatus(
        applyLoadPlan(snapshot, profile, { ...plan, evict: [] }),
        plan.node,
        profile.id,
        "loaded",
      ),
    );
    const loadMs = this.#now() - started;
    observer?.load?.(profile.id, plan.node, "success", loadMs / 1000);
    store.emit({
      type: "load_finished",
      at: at(),
      node: plan.node,
      model: profile.id,
      load_ms: loadMs,
    });
    log.info({ model: profile.id, node: plan.node, load_ms: loadMs }, "loaded");
    return {
      model: profile.id,
      node: plan.node,
      url: rewriteLoopback(answer.url, plan.url) ?? plan.url,
      loadMs,
      alreadyLoaded: answer.already_loaded,
      evicted: plan.evict,
    };
  }
}
