import type { Catalogue } from "@cortex/catalogue";
import { type Abortable, unlessAborted } from "@cortex/http-kit";
import type { FleetSnapshot } from "@cortex/protocol";
import { type Decision, resolve } from "@cortex/routing";
import { CortexError } from "../errors.js";
import type { FleetStore } from "../fleet/fleet-store.js";
import type { AdmissionQueue } from "./admission-queue.js";
import type { LoadCoordinator } from "./load-coordinator.js";
import type { Reservations } from "./reservations.js";

/** A reserved slot on one replica: where to send the request, and how to give the slot back. */
export interface Lease {
  /** The canonical model id (the client may have named an alias). */
  readonly model: string;
  readonly node: string;
  /** The neuron's base URL as cortex reaches it. */
  readonly url: string;
  /** The request waited for a cold load or wakes an unloaded model. */
  readonly coldStart: boolean;
  /** Gives the slot back; only the first call counts. */
  readonly release: () => void;
}

export interface DispatcherOptions {
  readonly store: FleetStore;
  readonly catalogue: () => Catalogue;
  readonly loads: LoadCoordinator;
  /** Where saturated requests wait; built first, as the poller and metrics read it too. */
  readonly admission: AdmissionQueue;
  /** Cortex's own requests per replica; a release should wake the model's admission queue. */
  readonly reservations: Reservations;
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
 * wait in the admission queue while saturated, join or start the single cold load, refuse with
 * the decision's error. Deciding and reserving happen in one synchronous step, so two requests
 * can never both take a replica's last free slot.
 */
export class Dispatcher {
  readonly reservations: Reservations;
  readonly admission: AdmissionQueue;
  readonly #options: DispatcherOptions;
  readonly #now: () => number;

  constructor(options: DispatcherOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.admission = options.admission;
    this.reservations = options.reservations;
    // Slots also free up when a poll shows a neuron less busy, a replica finishes loading, or
    // a node comes back: whoever waits decides again on the new snapshot.
    options.store.onReplaced(() => this.admission.wakeEveryone());
  }

  /** The decision for `model` right now (no reservation); for admin answers and tests. */
  decide(model: string, node?: string): Decision {
    return resolve(
      this.#options.store.snapshot,
      this.#options.catalogue(),
      node === undefined ? { model } : { model, node },
      this.reservations.live,
    );
  }

  /**
   * Resolves with a lease on a replica of `model`, after waiting for a slot or a cold load if
   * needed. Rejects with a CortexError (the client's answer) or the signal's reason.
   */
  async acquire(model: string, signal: Abortable, excluded?: ReadonlySet<string>): Promise<Lease> {
    const { store, catalogue, loads } = this.#options;
    let deadline: number | undefined;
    let ticket = 0;
    let coldStart = false;
    for (;;) {
      signal.throwIfAborted();
      const snapshot =
        excluded && excluded.size > 0 ? excluding(store.snapshot, excluded) : store.snapshot;
      const now = this.#now();
      const decision = resolve(snapshot, catalogue(), { model }, this.reservations.live);
      switch (decision.kind) {
        case "route":
          return this.#lease(decision.model, decision.node, decision.url, coldStart, now);
        case "lazy": {
          const running = loads.running(decision.model);
          if (decision.reason === "loading" && running) {
            coldStart = true;
            await unlessAborted(running, signal);
            continue;
          }
          // The neuron wakes an unloaded model (or finishes a load it started) on this request.
          return this.#lease(
            decision.model,
            decision.node,
            decision.url,
            coldStart || decision.reason === "unloaded",
            now,
          );
        }
        case "saturated": {
          const returning = deadline !== undefined;
          deadline ??= this.admission.deadline(now);
          if (!returning) ticket = this.admission.ticket();
          await this.admission.wait(decision.model, signal, {
            ticket,
            deadlineMs: deadline,
            nowMs: now,
            returning,
          });
          continue;
        }
        case "load": {
          coldStart = true;
          await unlessAborted(loads.load(decision.profile, decision.plan), signal);
          continue;
        }
        case "hold":
          throw new CortexError(
            "service_unavailable",
            `model "${decision.model}" is recovering on ${decision.node} after its server stopped; retry shortly`,
            { retryAfterS: decision.retry_after_s },
          );
        case "reject":
          throw new CortexError(decision.code, decision.message, {
            retryAfterS: decision.retry_after_s,
          });
      }
    }
  }

  #lease(model: string, node: string, url: string, coldStart: boolean, now: number): Lease {
    return {
      model,
      node,
      url,
      coldStart,
      release: this.reservations.take(node, model, now),
    };
  }
}
