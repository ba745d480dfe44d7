import { and, desc, eq, gte, sql } from "drizzle-orm";
import type { CortexDb } from "./database.js";
import { type ModelEventType, modelEvents, requestLog } from "./schema.js";

export interface ModelEvent {
  id: number;
  /** Epoch ms. */
  at: number;
  type: ModelEventType;
  node: string | null;
  model: string | null;
  durationMs: number | null;
  detail: Record<string, unknown> | null;
}

/** The newest `limit` lifecycle events, newest first (ties broken by insertion order). */
export const recentEvents = (db: CortexDb, limit: number): ModelEvent[] =>
  db
    .select()
    .from(modelEvents)
    .orderBy(desc(modelEvents.at), desc(modelEvents.id))
    .limit(Math.max(0, Math.trunc(limit)))
    .all();

export interface TrafficQuery {
  /** Only requests at or after this time (epoch ms). */
  sinceMs: number;
  /** Bucket width in ms (a positive integer); buckets start at multiples of it. */
  bucketMs: number;
  /** Only this model. */
  model?: string;
}

/** One (bucket, model) cell of the traffic summary. */
export interface TrafficBucket {
  /** Start of the bucket, epoch ms. */
  bucket: number;
  model: string;
  requests: number;
  /** Answered with a status of 400 or more. */
  errors: number;
  avgLatencyMs: number;
  maxLatencyMs: number;
  /** Over the requests that have a ttft; null when none has. */
  avgTtftMs: number | null;
  coldStarts: number;
  promptTokens: number;
  completionTokens: number;
}

/**
 * Requests per time bucket and model, aggregated by the database (the (at) and (model, at)
 * indexes serve the range), ordered by bucket then model. Standard SQL only, so it runs
 * unchanged on PostgreSQL.
 */
export const trafficSummary = (db: CortexDb, query: TrafficQuery): TrafficBucket[] =>
  trafficSummaryQuery(db, query).all();

/** The statement behind trafficSummary, unexecuted (tests check its query plan). */
export const trafficSummaryQuery = (db: CortexDb, query: TrafficQuery) => {
  const { sinceMs, bucketMs, model } = query;
  if (!Number.isSafeInteger(bucketMs) || bucketMs <= 0)
    throw new RangeError(`bucketMs must be a positive integer, got ${bucketMs}`);
  // `at - at % width` keeps the arithmetic in integers whatever type the driver binds.
  const bucket = sql<number>`(${requestLog.at} - (${requestLog.at} % ${bucketMs}))`.mapWith(Number);
  return db
    .select({
      bucket: bucket.as("bucket"),
      model: requestLog.model,
      requests: sql<number>`count(*)`.mapWith(Number),
      errors: sql<number>`sum(case when ${requestLog.status} >= 400 then 1 else 0 end)`.mapWith(
        Number,
      ),
      avgLatencyMs: sql<number>`avg(${requestLog.latencyMs})`.mapWith(Number),
      maxLatencyMs: sql<number>`max(${requestLog.latencyMs})`.mapWith(Number),
      avgTtftMs: sql<number | null>`avg(${requestLog.ttftMs})`,
      coldStarts: sql<number>`sum(case when ${requestLog.coldStart} then 1 else 0 end)`.mapWith(
        Number,
      ),
      promptTokens: sql<number>`coalesce(sum(${requestLog.promptTokens}), 0)`.mapWith(Number),
      completionTokens: sql<number>`coalesce(sum(${requestLog.completionTokens}), 0)`.mapWith(
        Number,
      ),
    })
    .from(requestLog)
    .where(
      and(
        gte(requestLog.at, sinceMs),
        model === undefined ? undefined : eq(requestLog.model, model),
      ),
    )
    .groupBy(sql`bucket`, requestLog.model)
    .orderBy(sql`bucket`, requestLog.model);
};
