import type { ApiNodeDrainAnswer, FleetEvent, FleetSnapshot, NodeDrain } from "@cortex/protocol";
import type { LiveState } from "@cortex/routing";
import { CortexError } from "../errors.js";
import type { Log } from "../log.js";
import { canMove, type DrainPhase, drainWork } from "./drain-work.js";

/** Where drains are kept across restarts (the state database's node_drains table). */
export interface DrainStore {
  read(): readonly { readonly node: string; readonly state: NodeDrain; readonly sinceMs: number }[];
  save(row: { readonly node: string; readonly state: NodeDrain; readonly sinceMs: number }): void;
  remove(node: string): void;
}

/** What NodeDrains needs of the fleet store. */
export interface DrainFleet {
  readonly snapshot: FleetSnapshot;
  emit(event: FleetEvent): void;
  onReplaced(listener: (snapshot: FleetSnapshot) => void): () => void;
}

export interface NodeDrainsOptions {
  readonly fleet: DrainFleet;
  readonly store: DrainStore;
  /** Routing's live state (reservations, requests waiting on loads): what keeps a model busy. */
  readonly live: () => LiveState;
  /** Unloads one model from one node, not forced: rejects while it is busy (tried again later). */
  readonly unload: (node: string, model: string) => Promise<void>;
  /** A node went out of service or came back: whoever waits for a replica decides again. */
  readonly changed: () => void;
  readonly log: Log;
  /** How often draining nodes are looked at besides every fleet change (default 1000 ms). */
  readonly intervalMs?: number;
  readonly now?: () => number;
}

/** The event that announces a move to `to`. */
const eventOf = (to: DrainPhase, at: string, node: string): FleetEvent => {
  switch (to) {
    case "serving":
      return { type: "node_resumed", at, node };
    case "draining":
      return { type: "node_draining", at, node };
    case "drained":
      return { type: "node_drained", at, node };
  }
};

/**
 * Nodes an operator took out for maintenance. `drain` stops new placements and requests there
 * at once (routing reads `states` as `LiveState.nodeDrains`); requests holding a slot finish;
 * each resident model is unloaded (not forced) once nothing is in flight on it, and the node is
 * `drained` once nothing is resident. `resume` puts it back. Every move goes through `#move`,
 * which checks the table in drain-work.ts, writes the database first (a failed write changes
 * nothing), then emits the event and wakes the waiting requests. Drains outlive restarts.
 */
export class NodeDrains {
  readonly #options: NodeDrainsOptions;
  readonly #now: () => number;
  readonly #states = new Map<string, NodeDrain>();
  readonly #since = new Map<string, number>();
  /** Unloads under way, by `node\0model`: one at a time per model. */
  readonly #unloading = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopReplaced: (() => void) | undefined;
  #scheduled = false;

  constructor(options: NodeDrainsOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    for (const row of options.store.read()) {
      this.#states.set(row.node, row.state);
      this.#since.set(row.node, row.sinceMs);
    }
  }

  /** Drained and draining nodes by name: routing's `LiveState.nodeDrains`, a live view. */
  get states(): ReadonlyMap<string, NodeDrain> {
    return this.#states;
  }

  start(): void {
    this.#timer = setInterval(() => this.tick(), this.#options.intervalMs ?? 1000);
    this.#timer.unref?.();
    // A finished request, an unload or a load shows in the next snapshot: look right after it.
    this.#stopReplaced = this.#options.fleet.onReplaced(() => this.nudge());
    this.tick();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stopReplaced?.();
  }

  /** Looks at the draining nodes soon (after the current task): a request just finished. */
  nudge(): void {
    if (this.#scheduled || this.#timer === undefined) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#timer !== undefined) this.tick();
    });
  }

  /** The node's drain as the API answers it. */
  stateOf(node: string): ApiNodeDrainAnswer {
    const drain = this.#states.get(node) ?? null;
    const since = this.#since.get(node);
    return {
      node,
      drain,
      since: drain === null || since === undefined ? null : new Date(since).toISOString(),
    };
  }

  /**
   * Takes the node out: no new placements or requests from now on. Idempotent (a node already
   * draining or drained stays as it is). 404 for a node not in the fleet.
   */
  drain(node: string): ApiNodeDrainAnswer {
    if (!this.#options.fleet.snapshot.nodes.some((entry) => entry.name === node))
      throw new CortexError("not_found", `node "${node}" is not in the fleet`, { param: "name" });
    if (!this.#states.has(node)) {
      this.#move(node, "draining");
      this.nudge();
    }
    return this.stateOf(node);
  }

  /**
   * Puts the node back in service. Idempotent; a drain kept for a node that has left the fleet
   * can be ended too. 404 for a node neither in the fleet nor drained.
   */
  resume(node: string): ApiNodeDrainAnswer {
    const known = this.#options.fleet.snapshot.nodes.some((entry) => entry.name === node);
    if (!known && !this.#states.has(node))
      throw new CortexError("not_found", `node "${node}" is not in the fleet`, { param: "name" });
    if (this.#states.has(node)) this.#move(node, "serving");
    return this.stateOf(node);
  }

  /**
   * The node left the fleet for good (a joined node forgotten): its drain, if any, goes with it,
   * from the database too, so a neuron joining later under the name starts in service.
   */
  forget(node: string): void {
    if (!this.#states.has(node)) return;
    this.#options.store.remove(node);
    this.#states.delete(node);
    this.#since.delete(node);
    this.#options.log.info({ node }, "drain forgotten with its node");
    this.#options.changed();
  }

  /** One look at every drained or draining node in the fleet: unload what is idle, mark empty ones. */
  tick(): void {
    if (this.#states.size === 0) return;
    const live = this.#options.live();
    for (const node of this.#options.fleet.snapshot.nodes) {
      const state = this.#states.get(node.name);
      // A node that is down cannot unload anything: its drain waits for it to answer again.
      if (state === undefined || !node.healthy) continue;
      const work = drainWork(node, live);
      if (work.empty) {
        if (state === "draining") this.#move(node.name, "drained");
        continue;
      }
      if (state === "drained") this.#move(node.name, "draining");
      for (const model of work.unload) void this.#unload(node.name, model);
    }
  }

  async #unload(node: string, model: string): Promise<void> {
    const key = `${node}\u0000${model}`;
    if (this.#unloading.has(key)) return;
    this.#unloading.add(key);
    try {
      await this.#options.unload(node, model);
      this.#options.log.info({ node, model }, "drain: model unloaded");
    } catch (error) {
      // Busy again (a request reached it through the neuron itself), already gone, or the node
      // went down: the next look tries again while the node still drains and still has it.
      const code = (error as { code?: unknown }).code;
      const expected = code === "model_busy" || code === "model_not_found";
      this.#options.log[expected ? "debug" : "warn"](
        { node, model, err: error },
        "drain: unload failed",
      );
    } finally {
      this.#unloading.delete(key);
    }
  }

  /** The one place a drain state changes: table check, database, memory, event, wake. */
  #move(node: string, to: DrainPhase): void {
    const from: DrainPhase = this.#states.get(node) ?? "serving";
    if (!canMove(from, to)) return;
    const nowMs = this.#now();
    if (to === "serving") this.#options.store.remove(node);
    else this.#options.store.save({ node, state: to, sinceMs: nowMs });
    if (to === "serving") {
      this.#states.delete(node);
      this.#since.delete(node);
    } else {
      this.#states.set(node, to);
      this.#since.set(node, nowMs);
    }
    this.#options.log.info({ node, from, to }, `node ${to === "serving" ? "resumed" : to}`);
    this.#options.fleet.emit(eventOf(to, new Date(nowMs).toISOString(), node));
    this.#options.changed();
  }
}
