import type { ErrorCode, Eviction, ModelProfile, NodeDrain } from "@cortex/protocol";
import type { Affinity } from "./affinity.js";

/** What a client asked for, before alias resolution. */
export interface RoutingRequest {
  /** The `model` field as the client sent it: an id or an alias. */
  readonly model: string;
  /** Restrict every branch to this node (an operator's `POST /api/models/load {node}`). */
  readonly node?: string;
  /**
   * The request was queued for the swap that brings its model in: it is served even while the
   * model drains for the next swap (a swap serves everything that waited for it).
   */
  readonly turn?: boolean;
  /** The conversation's key and remembered replica: keep it where its prompt is cached. */
  readonly affinity?: Affinity;
}

/**
 * Cortex's own bookkeeping, newer than any poll: reservations it holds right now and when it
 * last sent a request to each replica. Keys come from `replicaKey(node, model)`.
 */
export interface LiveState {
  readonly reserved?: ReadonlyMap<string, number>;
  /**
   * Cortex's reservations on each replica when its neuron's last applied `/models` answer was
   * requested: the part of the reported `in_flight + queued` that was cortex's own.
   */
  readonly reservedAtPoll?: ReadonlyMap<string, number>;
  /** Epoch milliseconds of cortex's last pick of the replica. */
  readonly lastUsedMs?: ReadonlyMap<string, number>;
  /**
   * Replicas draining for a swap (keys from `replicaKey`): they take no new request but those
   * holding a turn, and count toward nothing new (no scale-out, no join of their load).
   */
  readonly draining?: ReadonlySet<string>;
  /**
   * Requests waiting on a load of a replica (its cold load, or a load they joined): they will
   * run on it, so it is busy for eviction and swaps even before any of them holds a slot.
   */
  readonly pending?: ReadonlyMap<string, number>;
  /**
   * Replicas whose circuit is open (recent failures) or half-open with its trial request out:
   * they get no new request unless no other replica of the model is left.
   */
  readonly blocked?: ReadonlySet<string>;
  /**
   * Nodes an operator took out (`POST /api/nodes/{name}/drain`), by name: they take no new
   * placement, scale-out, swap or request, and their replicas count as serving nothing; a model
   * left only there is loaded elsewhere, or refused naming the drain.
   */
  readonly nodeDrains?: ReadonlyMap<string, NodeDrain>;
}

/** Where and how to cold-load a model, and what must be unloaded first. */
export interface LoadPlan {
  readonly node: string;
  /** Neuron base URL of that node. */
  readonly url: string;
  /** Device indices the model will use (empty for `runs_on: cpu`). */
  readonly devices: readonly number[];
  readonly tensor_parallel: number;
  /** Idle residents to unload first, least recently used first; empty when it fits in free memory. */
  readonly evict: readonly Eviction[];
}

export type Decision =
  /** A loaded replica with a free slot; the caller reserves it before doing anything async. */
  | {
      readonly kind: "route";
      readonly model: string;
      readonly node: string;
      readonly url: string;
      /** With an affinity: `hit` (the conversation's replica) or `spill` (it was too busy). */
      readonly affinity?: "hit" | "spill";
    }
  /**
   * Loaded, but every healthy replica is at `max_concurrency`: wait in the admission queue.
   * `scaleOut`: the model may have one more replica and this plan places it without evicting a
   * busy model; the caller starts it (once per model at a time) and the request still waits.
   */
  | {
      readonly kind: "saturated";
      readonly model: string;
      readonly replicas: number;
      readonly scaleOut?: { readonly profile: ModelProfile; readonly plan: LoadPlan };
    }
  /** Resident only on replicas draining for a swap: wait for the model's next turn. */
  | {
      readonly kind: "draining";
      readonly model: string;
    }
  /**
   * A catalogue model that fits on `node` only once busy models there (`blockers`) leave:
   * wait in that node's swap queue; the swap scheduler says when to go.
   */
  | {
      readonly kind: "swap";
      readonly model: string;
      readonly profile: ModelProfile;
      readonly node: string;
      readonly url: string;
      readonly blockers: readonly string[];
    }
  /** Only recovering replicas exist: answer 503 with Retry-After, place nothing new. */
  | {
      readonly kind: "hold";
      readonly model: string;
      readonly node: string;
      readonly retry_after_s: number;
    }
  /** Known to a healthy node but not resident (or still loading): the neuron loads it on demand. */
  | {
      readonly kind: "lazy";
      readonly model: string;
      readonly node: string;
      readonly url: string;
      readonly reason: "unloaded" | "loading";
    }
  /** A catalogue model resident nowhere: cold-load it per the plan, then route. */
  | {
      readonly kind: "load";
      readonly model: string;
      readonly profile: ModelProfile;
      readonly plan: LoadPlan;
    }
  | {
      readonly kind: "reject";
      readonly code: ErrorCode;
      readonly message: string;
      /** Set for transient rejections: how long the client should wait before retrying. */
      readonly retry_after_s: number | null;
    };

export type DecisionKind = Decision["kind"];
export type Reject = Extract<Decision, { kind: "reject" }>;
