import { type FleetSnapshot, ModelStatus } from "@cortex/protocol";
import { splitReplicaKey } from "@cortex/routing";
import type { RequestHandler } from "express";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { FleetStore } from "../fleet/fleet-store.js";

/**
 * Cortex's Prometheus metrics, in a registry of their own (never prom-client's global one),
 * so tests and several cortex instances in one process do not collide.
 *
 * Label cardinality is bounded by the callers: `model` is always a catalogue id or a model a
 * neuron reported (callers record anything else, e.g. a name a client made up, as "unknown"),
 * `node` a configured neuron name or "none", `status` an HTTP status code.
 */

/** Cortex's own live counters, read at scrape time. */
export interface LiveCounts {
  /** Requests waiting in cortex's admission queues, by model id. */
  readonly queued: ReadonlyMap<string, number>;
  /** Requests cortex is proxying right now, keyed by routing's `replicaKey(node, model)`. */
  readonly inFlight: ReadonlyMap<string, number>;
  /** Requests waiting for busy models to be swapped out for theirs, by model id. */
  readonly swapQueued?: ReadonlyMap<string, number>;
}

export interface CortexMetricsOptions {
  readonly store: FleetStore;
  /** Without it, `cortex_queue_depth` and `cortex_in_flight` have no series. */
  readonly live?: () => LiveCounts;
}

export type LoadOutcome = "success" | "failure";

export interface RequestObservation {
  /** A catalogue or known model id, or "unknown"; never a raw client-supplied name. */
  readonly model: string;
  /** The node that served it, or "none" when the request never reached one. */
  readonly node: string;
  /** The HTTP status cortex answered with. */
  readonly status: number;
  readonly seconds: number;
  /** Time to the first streamed byte of the answer, when there was one. */
  readonly ttftSeconds?: number;
}

// From a cache hit on a tiny model (0.5 ms) to a long generation or a request that waited on a
// cold load (120 s).
const REQUEST_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
];
const TTFT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
// Loads include downloads of many-gigabyte weights, so they run from seconds to many minutes.
const LOAD_BUCKETS = [0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800];

const BYTES_PER_MB = 1024 * 1024;

/** A histogram must never throw into the request path over a NaN or a clock step backwards. */
const duration = (seconds: number): number | undefined =>
  Number.isFinite(seconds) ? Math.max(0, seconds) : undefined;

export class CortexMetrics {
  readonly registry = new Registry();

  readonly #requests: Counter<"model" | "node" | "status">;
  readonly #requestDuration: Histogram<"model" | "node" | "status">;
  readonly #ttft: Histogram<"model" | "node">;
  readonly #coldStarts: Counter<"model" | "node">;
  readonly #loadDuration: Histogram<"model" | "node" | "outcome">;
  readonly #evictions: Counter<"model" | "node">;
  readonly #swaps: Counter<"model" | "node">;
  readonly #scaleOuts: Counter<"model" | "node">;
  readonly #scaleIns: Counter<"model" | "node">;
  readonly #queueWait: Histogram<"model">;
  readonly #affinity: Counter<"model" | "outcome">;

  constructor(options: CortexMetricsOptions) {
    const { store, live } = options;
    const registers = [this.registry];

    this.#requests = new Counter({
      name: "cortex_requests_total",
      help: "Requests cortex answered, by model, serving node and HTTP status.",
      labelNames: ["model", "node", "status"],
      registers,
    });
    this.#requestDuration = new Histogram({
      name: "cortex_request_duration_seconds",
      help: "Time from receiving a request to the end of its answer.",
      labelNames: ["model", "node", "status"],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.#ttft = new Histogram({
      name: "cortex_time_to_first_token_seconds",
      help: "Time from receiving a request to the first byte of its answer.",
      labelNames: ["model", "node"],
      buckets: TTFT_BUCKETS,
      registers,
    });
    this.#coldStarts = new Counter({
      name: "cortex_cold_starts_total",
      help: "Loads cortex started because a request needed a model resident nowhere.",
      labelNames: ["model", "node"],
      registers,
    });
    this.#loadDuration = new Histogram({
      name: "cortex_load_duration_seconds",
      help: "How long model loads took, by outcome (success or failure).",
      labelNames: ["model", "node", "outcome"],
      buckets: LOAD_BUCKETS,
      registers,
    });
    this.#evictions = new Counter({
      name: "cortex_evictions_total",
      help: "Models cortex evicted to make room for another.",
      labelNames: ["model", "node"],
      registers,
    });

    this.#swaps = new Counter({
      name: "cortex_swaps_total",
      help: "Swaps started: busy models drained and evicted for a model requests waited for.",
      labelNames: ["model", "node"],
      registers,
    });
    this.#scaleOuts = new Counter({
      name: "cortex_scale_outs_total",
      help: "Replicas cortex added: for waiting requests (max_replicas) or for min_replicas.",
      labelNames: ["model", "node"],
      registers,
    });
    this.#scaleIns = new Counter({
      name: "cortex_scale_ins_total",
      help: "Idle replicas beyond min_replicas cortex unloaded.",
      labelNames: ["model", "node"],
      registers,
    });
    this.#queueWait = new Histogram({
      name: "cortex_queue_wait_seconds",
      help: "How long requests that had to wait (for a slot, a swap or a turn) waited for a replica.",
      labelNames: ["model"],
      buckets: TTFT_BUCKETS,
      registers,
    });

    this.#affinity = new Counter({
      name: "cortex_affinity_total",
      help: "Requests of a conversation sent to its own replica (hit) or, that one too busy, to the next (spill).",
      labelNames: ["model", "outcome"],
      registers,
    });

    // Everything below is computed at scrape time: reset, then set from the current snapshot,
    // so a node or model that left the fleet stops being exported instead of going stale.
    const fromSnapshot = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      fill: (gauge: Gauge<L>, snapshot: FleetSnapshot) => void,
    ): void => {
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          fill(this, store.snapshot);
        },
      });
    };
    const fromLive = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      fill: (gauge: Gauge<L>, counts: LiveCounts) => void,
    ): void => {
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          if (live) fill(this, live());
        },
      });
    };

    fromLive(
      "cortex_queue_depth",
      "Requests waiting in cortex's admission queue.",
      ["model"],
      (gauge, counts) => {
        for (const [model, depth] of counts.queued) gauge.set({ model }, depth);
      },
    );
    fromLive(
      "cortex_swap_queue_depth",
      "Requests waiting for busy models to be swapped out for theirs.",
      ["model"],
      (gauge, counts) => {
        for (const [model, depth] of counts.swapQueued ?? []) gauge.set({ model }, depth);
      },
    );
    fromLive(
      "cortex_in_flight",
      "Requests cortex is proxying to a node right now.",
      ["model", "node"],
      (gauge, counts) => {
        for (const [key, count] of counts.inFlight) {
          const replica = splitReplicaKey(key);
          // A key that is no replicaKey is a caller bug; exporting it would invent a label.
          if (replica === undefined) continue;
          gauge.set({ model: replica.model, node: replica.node }, count);
        }
      },
    );
    fromSnapshot(
      "cortex_node_healthy",
      "1 when cortex's last polls of the node succeeded, 0 when it is unhealthy or not polled yet.",
      ["node"],
      (gauge, snapshot) => {
        for (const node of snapshot.nodes) gauge.set({ node: node.name }, node.healthy ? 1 : 0);
      },
    );
    fromSnapshot(
      "cortex_neuron_poll_failures",
      "Consecutive failed polls of the node (0 after a good poll).",
      ["node"],
      (gauge, snapshot) => {
        for (const node of snapshot.nodes)
          gauge.set({ node: node.name }, node.consecutive_failures);
      },
    );
    // Device and model figures are exported for healthy nodes only: an unreachable node's last
    // report would otherwise pass for current free memory.
    fromSnapshot(
      "cortex_device_vram_total_bytes",
      "Total memory of each device of a healthy node.",
      ["node", "device", "name"],
      (gauge, snapshot) => {
        for (const node of snapshot.nodes) {
          if (!node.healthy) continue;
          for (const device of node.devices) {
            const labels = { node: node.name, device: String(device.index), name: device.name };
            gauge.set(labels, device.vram_total_mb * BYTES_PER_MB);
          }
        }
      },
    );
    fromSnapshot(
      "cortex_device_vram_free_bytes",
      "Free memory of each device of a healthy node, as the node last reported it.",
      ["node", "device", "name"],
      (gauge, snapshot) => {
        for (const node of snapshot.nodes) {
          if (!node.healthy) continue;
          for (const device of node.devices) {
            const labels = { node: node.name, device: String(device.index), name: device.name };
            gauge.set(labels, device.vram_free_mb * BYTES_PER_MB);
          }
        }
      },
    );
    fromSnapshot(
      "cortex_models_resident",
      "Models a healthy node knows, by status (loading, loaded and recovering hold memory).",
      ["node", "status"],
      (gauge, snapshot) => {
        for (const node of snapshot.nodes) {
          if (!node.healthy) continue;
          // Every status gets a series, zeros included, so a count dropping to 0 is visible.
          for (const status of ModelStatus.options) {
            const count = node.models.filter((model) => model.status === status).length;
            gauge.set({ node: node.name, status }, count);
          }
        }
      },
    );
  }

  observeRequest(observation: RequestObservation): void {
    const { model, node } = observation;
    const labels = { model, node, status: String(observation.status) };
    this.#requests.inc(labels);
    const seconds = duration(observation.seconds);
    if (seconds !== undefined) this.#requestDuration.observe(labels, seconds);
    if (observation.ttftSeconds !== undefined) {
      const ttft = duration(observation.ttftSeconds);
      if (ttft !== undefined) this.#ttft.observe({ model, node }, ttft);
    }
  }

  coldStart(model: string, node: string): void {
    this.#coldStarts.inc({ model, node });
  }

  observeLoad(model: string, node: string, outcome: LoadOutcome, seconds: number): void {
    const value = duration(seconds);
    if (value !== undefined) this.#loadDuration.observe({ model, node, outcome }, value);
  }

  eviction(model: string, node: string): void {
    this.#evictions.inc({ model, node });
  }

  swap(model: string, node: string): void {
    this.#swaps.inc({ model, node });
  }

  scaleOut(model: string, node: string): void {
    this.#scaleOuts.inc({ model, node });
  }

  scaleIn(model: string, node: string): void {
    this.#scaleIns.inc({ model, node });
  }

  affinity(model: string, outcome: "hit" | "spill"): void {
    this.#affinity.inc({ model, outcome });
  }

  queueWait(model: string, seconds: number): void {
    const value = duration(seconds);
    if (value !== undefined) this.#queueWait.observe({ model }, value);
  }
}

/** `GET /metrics`: the Prometheus text format. */
export const metricsHandler =
  (metrics: CortexMetrics): RequestHandler =>
  async (_req, res) => {
    const body = await metrics.registry.metrics();
    res.setHeader("Content-Type", metrics.registry.contentType);
    res.end(body);
  };
