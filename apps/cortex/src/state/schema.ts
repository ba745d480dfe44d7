import type { DiscoveryAnswer, NodeDrain } from "@cortex/protocol";
import { index, integer, real, sqliteTable, text } from "drizzle-orm/sqlite-core";

// Portable to PostgreSQL on purpose: only integers, reals and text (JSON is stored as text,
// booleans as 0/1, times as epoch milliseconds). A PostgreSQL port maps the ms integers to
// bigint and keeps every query in queries.ts unchanged.
//
// Changing a table here needs a new migration in apps/cortex/migrations (schema.test.ts fails
// until the migrated database matches these declarations again).

/** Every neuron cortex has discovered, with its last discovery answer. */
export const nodes = sqliteTable("nodes", {
  name: text("name").primaryKey(),
  url: text("url").notNull(),
  healthy: integer("healthy", { mode: "boolean" }).notNull(),
  lastOkAt: integer("last_ok_at"),
  discovery: text("discovery", { mode: "json" }).$type<DiscoveryAnswer>(),
  updatedAt: integer("updated_at").notNull(),
});

/** What `model_events.type` holds: the lifecycle FleetEvents plus `load_requested`. */
export type ModelEventType =
  | "load_requested"
  | "load_started"
  | "load_finished"
  | "load_failed"
  | "unloaded"
  | "evicted"
  | "model_state"
  | "node_health"
  | "swap_started"
  | "scaled_out"
  | "scaled_in"
  | "node_draining"
  | "node_drained"
  | "node_resumed"
  | "node_joined"
  | "node_removed";

/** Model lifecycle history: loads with their durations, failures, evictions, health flips. */
export const modelEvents = sqliteTable(
  "model_events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    at: integer("at").notNull(),
    type: text("type").$type<ModelEventType>().notNull(),
    node: text("node"),
    model: text("model"),
    durationMs: real("duration_ms"),
    detail: text("detail", { mode: "json" }).$type<Record<string, unknown>>(),
  },
  (table) => [
    index("model_events_at_idx").on(table.at),
    index("model_events_model_at_idx").on(table.model, table.at),
  ],
);

/**
 * One row per proxied request. The id is a plain rowid alias (no AUTOINCREMENT): this is the
 * high-volume table and ids are never shown or referenced elsewhere.
 */
export const requestLog = sqliteTable(
  "request_log",
  {
    id: integer("id").primaryKey(),
    at: integer("at").notNull(),
    requestId: text("request_id").notNull(),
    model: text("model").notNull(),
    node: text("node"),
    status: integer("status").notNull(),
    latencyMs: real("latency_ms").notNull(),
    ttftMs: real("ttft_ms"),
    promptTokens: integer("prompt_tokens"),
    completionTokens: integer("completion_tokens"),
    stream: integer("stream", { mode: "boolean" }).notNull(),
    coldStart: integer("cold_start", { mode: "boolean" }).notNull(),
    errorCode: text("error_code"),
  },
  (table) => [
    index("request_log_at_idx").on(table.at),
    index("request_log_model_at_idx").on(table.model, table.at),
  ],
);

/**
 * What cortex has learnt of each model's GPU memory (issue 18), per memory key: the model id,
 * its harness and a hash of what changes its footprint (source, quant, context, slots, args,
 * devices). A neuron's estimate (kept so a restart does not ask again), the largest footprint
 * measured, and the floor an engine's out-of-memory failure raised it to. Written behind.
 */
export const modelMemory = sqliteTable("model_memory", {
  key: text("key").primaryKey(),
  model: text("model").notNull(),
  harness: text("harness").notNull(),
  estimatedMb: integer("estimated_mb"),
  /** `{basis, breakdown}` of the estimate, JSON. */
  estimate: text("estimate", { mode: "json" }).$type<StoredEstimate>(),
  observedMb: integer("observed_mb"),
  raisedMb: integer("raised_mb"),
  updatedAt: integer("updated_at").notNull(),
});

/** The estimate's details as model_memory.estimate stores them. */
export interface StoredEstimate {
  readonly basis: string;
  readonly breakdown: {
    readonly weights_mb: number;
    readonly kv_cache_mb: number;
    readonly overhead_mb: number;
  };
}

/**
 * Nodes an operator took out of service (`POST /api/nodes/{name}/drain`), by node name: a drain
 * outlives a restart of cortex, so a node under maintenance never gets requests again just
 * because cortex restarted. Written at once (rare, and must not be lost); a resume deletes it.
 */
export const nodeDrains = sqliteTable("node_drains", {
  node: text("node").primaryKey(),
  state: text("state").$type<NodeDrain>().notNull(),
  /** Epoch ms of the drain's last change (when it started draining, or became drained). */
  since: integer("since").notNull(),
});

/**
 * Neurons that joined by themselves (`POST /api/neurons/join`), by name: polled again after a
 * restart like cortex.yaml's `neurons:`. `token` is the neuron's own bearer token, which cortex
 * must send on every call to it: it is stored as given (protect the state file like
 * cortex.yaml) and never shown by any API answer or log line. Times are epoch ms.
 */
export const joinedNodes = sqliteTable("joined_nodes", {
  name: text("name").primaryKey(),
  url: text("url").notNull(),
  token: text("token").notNull(),
  joinedAt: integer("joined_at").notNull(),
  lastJoinAt: integer("last_join_at").notNull(),
});

export const schema = { nodes, modelEvents, requestLog, modelMemory, nodeDrains, joinedNodes };
export type StateSchema = typeof schema;
