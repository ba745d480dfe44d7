import { replicaKey } from "@cortex/routing";
import type { Circuits } from "./circuits.js";
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
  /** How long the request waited for a slot, a load, a swap or a turn (ms). */
  readonly waitedMs: number;
  /** Gives the slot back; only the first call counts. */
  readonly release: () => void;
  /**
   * What came of the request, for the replica's failure memory: `false` when the connection
   * failed, the harness answered 5xx or stalled; `true` when it answered otherwise.
   */
  readonly report: (ok: boolean) => void;
}

/** A request's conversation key, or how to read it (only when a choice of replicas needs it). */
export type AffinityKey = string | (() => string | undefined);

/**
 * Takes a slot on `where`'s replica (a reservation until released) and tells its circuit a
 * request went out; the lease reports back to that circuit once.
 */
export const leaseOn = (
  replicas: { readonly reservations: Reservations; readonly circuits: Circuits },
  where: Pick<Lease, "model" | "node" | "url" | "coldStart" | "waitedMs">,
  nowMs: number,
): Lease => {
  const key = replicaKey(where.node, where.model);
  replicas.circuits.sent(key);
  let reported = false;
  return {
    ...where,
    release: replicas.reservations.take(where.node, where.model, nowMs),
    report: (ok) => {
      if (reported) return;
      reported = true;
      if (ok) replicas.circuits.succeeded(key);
      else replicas.circuits.failed(key);
    },
  };
};
