import { MAX_TIMER_MS } from "@cortex/protocol";
import { type Circuit, CLOSED, circuitAllows, circuitFailed, circuitSent } from "@cortex/routing";

/**
 * Cortex's failure memory per replica (`replicaKey(node, model)`): the circuit of each, and the
 * set routing reads (`live.blocked`) of those that may take no new request now: open, or
 * half-open with its one trial request out. A timer moves an open circuit to half-open and
 * calls `onChange`, so requests waiting for a replica look again.
 */
export class Circuits {
  readonly blocked = new Set<string>();
  readonly #circuits = new Map<string, Circuit>();
  readonly #timers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly #onChange: () => void;
  readonly #now: () => number;

  constructor(onChange: () => void, now: () => number = Date.now) {
    this.#onChange = onChange;
    this.#now = now;
  }

  /** The circuit of a replica (closed when it never failed). */
  of(key: string): Circuit {
    return this.#circuits.get(key) ?? CLOSED;
  }

  /** A request was sent to the replica: a half-open circuit has its trial out. */
  sent(key: string): void {
    const circuit = this.#circuits.get(key);
    if (circuit === undefined) return;
    const next = circuitSent(circuit, this.#now());
    this.#circuits.set(key, next);
    if (!circuitAllows(next, this.#now())) this.blocked.add(key);
  }

  /** A request to the replica was answered: the circuit closes. */
  succeeded(key: string): void {
    if (!this.#circuits.has(key)) return;
    this.#circuits.delete(key);
    this.#clearTimer(key);
    this.blocked.delete(key);
    this.#onChange();
  }

  /** A request to the replica failed (connection, 5xx, stall): the circuit opens. */
  failed(key: string): void {
    const now = this.#now();
    const next = circuitFailed(this.of(key), now);
    this.#circuits.set(key, next);
    this.blocked.add(key);
    this.#clearTimer(key);
    if (next.state !== "open") return;
    const timer = setTimeout(
      () => {
        this.#timers.delete(key);
        // Half-open: one trial may go.
        this.blocked.delete(key);
        this.#onChange();
      },
      Math.min(MAX_TIMER_MS, Math.max(0, next.untilMs - now)),
    );
    timer.unref?.();
    this.#timers.set(key, timer);
  }

  #clearTimer(key: string): void {
    const timer = this.#timers.get(key);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers.delete(key);
  }

  close(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }
}
