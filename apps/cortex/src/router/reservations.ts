import { type LiveState, replicaKey } from "@cortex/routing";

/**
 * The requests cortex has sent to each replica and not yet seen finish: its own, exact and
 * current count, which routing combines with the neurons' reports. A reservation is taken in
 * the same synchronous step as the routing decision and released exactly once.
 */
export class Reservations {
  readonly #reserved = new Map<string, number>();
  readonly #lastUsedMs = new Map<string, number>();
  readonly #byModel = new Map<string, number>();
  readonly #atPoll = new Map<string, number>();
  readonly #sent = new Map<string, Map<string, number>>();
  readonly #onRelease: (model: string) => void;
  /** What routing reads; the maps are live views, never copied on the request path. */
  readonly live: LiveState = {
    reserved: this.#reserved,
    lastUsedMs: this.#lastUsedMs,
    reservedAtPoll: this.#atPoll,
  };

  constructor(onRelease: (model: string) => void = () => {}) {
    this.#onRelease = onRelease;
  }

  /** Reserves a slot on `node` for `model`; the returned function releases it, once. */
  take(node: string, model: string, nowMs: number): () => void {
    const key = replicaKey(node, model);
    this.#reserved.set(key, (this.#reserved.get(key) ?? 0) + 1);
    this.#byModel.set(model, (this.#byModel.get(model) ?? 0) + 1);
    this.#lastUsedMs.set(key, nowMs);
    // A request started while the node's poll is out may reach the neuron before it answers,
    // and then be in the reported in_flight: it counts as cortex's in that answer too.
    // (Counting only what was reserved when the poll left made such a request look like
    // another client's until the next poll: a one-slot model sat "full" for a poll interval.)
    const sent = this.#sent.get(node);
    if (sent) sent.set(key, (sent.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#reserved.get(key) ?? 1) - 1;
      if (left > 0) this.#reserved.set(key, left);
      else this.#reserved.delete(key);
      const modelLeft = (this.#byModel.get(model) ?? 1) - 1;
      if (modelLeft > 0) this.#byModel.set(model, modelLeft);
      else this.#byModel.delete(model);
      this.#onRelease(model);
    };
  }

  /**
   * `/models` is being requested from `node`: remember what cortex has in flight there now,
   * plus (see take) what it sends there until the answer is applied.
   */
  markSent(node: string): void {
    const prefix = replicaKey(node, "");
    const counts = new Map<string, number>();
    for (const [key, count] of this.#reserved) if (key.startsWith(prefix)) counts.set(key, count);
    this.#sent.set(node, counts);
  }

  /**
   * That answer is now in the snapshot: its in_flight counts include at most what cortex had in
   * flight there while it was being answered, which routing subtracts to find the load that is
   * not cortex's (never below zero: overcounting cortex's share only delays a neuron's queue).
   */
  markApplied(node: string): void {
    const prefix = replicaKey(node, "");
    for (const key of [...this.#atPoll.keys()])
      if (key.startsWith(prefix)) this.#atPoll.delete(key);
    for (const [key, count] of this.#sent.get(node) ?? []) this.#atPoll.set(key, count);
    this.#sent.delete(node);
  }

  /** Reserved slots by replica key (`replicaKey(node, model)`), for metrics and tests. */
  get byReplica(): ReadonlyMap<string, number> {
    return this.#reserved;
  }

  /** Total reserved slots; zero whenever nothing is in flight. */
  get total(): number {
    let sum = 0;
    for (const count of this.#byModel.values()) sum += count;
    return sum;
  }
}
