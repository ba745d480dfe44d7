export {
  type CortexDb,
  type CortexState,
  DEFAULT_BUSY_TIMEOUT_MS,
  MIGRATIONS_DIR,
  type OpenStateOptions,
  openState,
  STATE_FILE_NAME,
  STATE_PRAGMAS,
  StateError,
  type StateErrorCode,
} from "./database.js";
export { type DrainRow, DrainTable } from "./drain-table.js";
export { type JoinedRow, JoinedTable } from "./joined-table.js";
export {
  eventEntry,
  type FleetEventSource,
  LifecycleLog,
  type LifecycleLogOptions,
  type ModelEventEntry,
} from "./lifecycle-log.js";
export { MemoryLog, type MemoryRow, readMemory } from "./memory-table.js";
export {
  type KnownNode,
  knownNodes,
  type ModelEvent,
  recentEvents,
  type TrafficBucket,
  type TrafficGrouping,
  type TrafficOverallBucket,
  type TrafficQuery,
  type TrafficSummary,
  trafficSummary,
  trafficSummaryQuery,
} from "./queries.js";
export { RequestLog, type RequestLogEntry, type RequestLogOptions } from "./request-log.js";
export { pruneRequestLog, RequestLogRetention, type RetentionOptions } from "./retention.js";
export {
  joinedNodes,
  type ModelEventType,
  modelEvents,
  modelMemory,
  nodeDrains,
  nodes,
  requestLog,
  type StateSchema,
  type StoredEstimate,
  schema,
} from "./schema.js";
export { TrafficReader } from "./traffic-reader.js";
export {
  DEFAULT_BATCH_SIZE,
  DEFAULT_FLUSH_INTERVAL_MS,
  DEFAULT_MAX_PENDING,
  type WriteBehindOptions,
  type WriteBehindStats,
} from "./write-behind.js";
