import type {
  FleetEvent,
  FleetNode,
  FleetSnapshot,
  ModelStatus,
  NeuronTarget,
} from "@cortex/protocol";

export type FleetListener = (event: FleetEvent) => void;

/** Applies one step of cortex's own change to a node, inside `FleetStore.own`. */
export type ApplyOwn = (change: (current: FleetSnapshot) => FleetSnapshot) => FleetSnapshot;

/** A node cortex has configured but not yet heard from: not routable until its first good poll. */
/** What the store needs of a configured neuron (tests may leave the priority out). */
export type StoreTarget = Pick<NeuronTarget, "name" | "url"> & {
  readonly token?: string;
  readonly priority?: number;
};

export const unknownNode = (target: StoreTarget): FleetNode => ({
  name: target.name,
  url: target.url.replace(/\/+$/, ""),
  healthy: false,
  priority: target.priority ?? 0,
  consecutive_failures: 0,
  last_poll_at: null,
  last_ok_at: null,
  error: "not polled yet",
  node: null,
  devices: [],
  harnesses: [],
  models: [],
});

const statusesOf = (node: FleetNode | undefined): Map<string, ModelStatus> =>
  new Map((node?.models ?? []).map((model) => [model.id, model.status]));

/** The events that turn `before` into `after`: health flips and model status changes. */
export const diffSnapshots = (
  before: FleetSnapshot,
  after: FleetSnapshot,
  at: string,
): FleetEvent[] => {
  const events: FleetEvent[] = [];
  const previous = new Map(before.nodes.map((node) => [node.name, node]));
  for (const node of after.nodes) {
    const old = previous.get(node.name);
    if (old && old.healthy !== node.healthy) {
      events.push({
        type: "node_health",
        at,
        node: node.name,
        healthy: node.healthy,
        error: node.error,
      });
    }
    const from = statusesOf(old);
    const to = statusesOf(node);
    for (const [model, status] of to) {
      const was = from.get(model) ?? null;
      if (was !== status)
        events.push({ type: "model_state", at, node: node.name, model, from: was, to: status });
    }
    for (const [model, status] of from) {
      if (!to.has(model))
        events.push({ type: "model_state", at, node: node.name, model, from: status, to: null });
    }
  }
  return events;
};

/**
 * The one fleet snapshot. It is an immutable value, replaced whole: a reader holding it never
 * sees half an update, and routing decides on exactly what it read. Every replacement is
 * diffed and announced to listeners (the event stream, the lifecycle log, metrics).
 */
export class FleetStore {
  #snapshot: FleetSnapshot;
  readonly #listeners = new Set<FleetListener>();
  readonly #replaced = new Set<(snapshot: FleetSnapshot) => void>();
  readonly #now: () => number;
  readonly #generations = new Map<string, number>();
  readonly #busy = new Map<string, number>();
  readonly #settled = new Set<(name: string) => void>();

  constructor(targets: readonly StoreTarget[], now: () => number = Date.now) {
    this.#now = now;
    this.#snapshot = {
      taken_at: new Date(now()).toISOString(),
      nodes: targets.map(unknownNode),
    };
  }

  get snapshot(): FleetSnapshot {
    return this.#snapshot;
  }

  /**
   * Adds a node to the fleet at run time (a neuron joined, cortex.yaml gained it), or changes a
   * present one: a new URL makes it a node cortex has not heard from yet (another host may
   * answer there); the same URL keeps what is known of it and takes the new priority.
   */
  setNode(target: StoreTarget): void {
    const url = target.url.replace(/\/+$/, "");
    this.update((current) => {
      const index = current.nodes.findIndex((node) => node.name === target.name);
      const present = current.nodes[index];
      if (present === undefined)
        return { ...current, nodes: [...current.nodes, unknownNode(target)] };
      const next =
        present.url === url ? { ...present, priority: target.priority ?? 0 } : unknownNode(target);
      if (next.url === present.url && next.priority === present.priority) return current;
      const nodes = current.nodes.slice();
      nodes[index] = next;
      return { ...current, nodes };
    });
  }

  /** Takes a node out of the fleet (routing sees it no more); false when it was not there. */
  removeNode(name: string): boolean {
    let removed = false;
    this.update((current) => {
      const nodes = current.nodes.filter((node) => node.name !== name);
      removed = nodes.length !== current.nodes.length;
      return removed ? { ...current, nodes } : current;
    });
    this.#generations.delete(name);
    return removed;
  }

  /** Replaces the snapshot with `change(current)` and announces what changed. Synchronous. */
  update(change: (current: FleetSnapshot) => FleetSnapshot): FleetSnapshot {
    const before = this.#snapshot;
    const after = change(before);
    if (after === before) return before;
    const at = new Date(this.#now()).toISOString();
    this.#snapshot = { ...after, taken_at: at };
    for (const event of diffSnapshots(before, this.#snapshot, at)) this.emit(event);
    for (const listener of this.#replaced) {
      try {
        listener(this.#snapshot);
      } catch {
        // As for events: one listener's failure stays its own.
      }
    }
    return this.#snapshot;
  }

  /**
   * How many times cortex itself changed this node's models (a load, an eviction, an unload).
   * A poll answer that left the neuron before such a change is stale: the poller compares
   * generations and then keeps cortex's newer view of the models.
   */
  generation(name: string): number {
    return this.#generations.get(name) ?? 0;
  }

  /**
   * Runs a change of cortex's own to a node's models (a load plan with its evictions, an
   * unload): `work` applies its steps through `apply`, each at once and bumping the node's
   * generation. Until `work` settles, polls of that node do not replace its models (the
   * neuron's answer may predate any step); afterwards the generation moves on once more, so a
   * poll sent while it ran is stale too. Scopes on one node nest; the end always runs.
   */
  async own<T>(name: string, work: (apply: ApplyOwn) => Promise<T>): Promise<T> {
    this.#busy.set(name, (this.#busy.get(name) ?? 0) + 1);
    const apply: ApplyOwn = (change) => {
      this.#generations.set(name, this.generation(name) + 1);
      return this.update(change);
    };
    try {
      return await work(apply);
    } finally {
      const left = (this.#busy.get(name) ?? 1) - 1;
      if (left > 0) this.#busy.set(name, left);
      else this.#busy.delete(name);
      this.#generations.set(name, this.generation(name) + 1);
      if (left <= 0) {
        for (const listener of this.#settled) {
          try {
            listener(name);
          } catch {
            // A listener's failure is its own; the work's outcome stands.
          }
        }
      }
    }
  }

  /**
   * Called when the last of cortex's own changes on a node ends (see `own`): news about its
   * models that was held back meanwhile can be asked for again.
   */
  onSettled(listener: (name: string) => void): () => void {
    this.#settled.add(listener);
    return () => this.#settled.delete(listener);
  }

  /** A change of cortex's own is under way on the node (see `own`). */
  busy(name: string): boolean {
    return this.#busy.has(name);
  }

  /** Announces an event that is not a snapshot change (a load started, progress, …). */
  emit(event: FleetEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own; the fleet and the other listeners carry on.
      }
    }
  }

  /** Called after every replacement, changed statuses or not (in-flight counts, free memory). */
  onReplaced(listener: (snapshot: FleetSnapshot) => void): () => void {
    this.#replaced.add(listener);
    return () => this.#replaced.delete(listener);
  }

  subscribe(listener: FleetListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
