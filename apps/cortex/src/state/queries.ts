import { desc, type SQL, sql } from "drizzle-orm";
import type { CortexDb } from "./database.js";
import { type ModelEventType, modelEvents, nodes, requestLog } from "./schema.js";

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

/** A node cortex has seen, as its last discovery and health change left it. */
export interface KnownNode {
  name: string;
  url: string;
  healthy: boolean;
  /** Epoch ms of its last successful poll, when it had one. */
  lastOkAt: number | null;
  /** Epoch ms of the last change to this row. */
  updatedAt: number;
}

/** Every node cortex has discovered (configured now or not), by name. */
export const knownNodes = (db: CortexDb): KnownNode[] =>
  db
    .select({
      name: nodes.name,
      url: nodes.url,
      healthy: nodes.healthy,
      lastOkAt: nodes.lastOkAt,
      updatedAt: nodes.updatedAt,
    })
    .from(nodes)
    .orderBy(nodes.name)
    .all();

export interface TrafficQuery {
  /** Only requests at or after this time (epoch ms). */
  sinceMs: number;
  /** Bucket width in ms (a positive integer); buckets start at multiples of it. */
  bucketMs: number;
  /** Only this model. */
  model?: string;
}

/** One bucket of the traffic summary over all models (or over the one model asked for). */
export interface TrafficOverallBucket {
  /** Start of the bucket, epoch ms. */
  bucket: number;
  requests: number;
  /** Answered with a status of 400 or more. */
  errors: number;
  avgLatencyMs: number;
  maxLatencyMs: number;
  /** Nearest-rank percentiles: the value at rank ceil(p·n) of the n latencies, ascending. */
  p50LatencyMs: number;
  p95LatencyMs: number;
  p99LatencyMs: number;
  /** Over the requests that have a ttft; null when none has. */
  avgTtftMs: number | null;
  /** Nearest-rank percentiles over the requests that have a ttft; null when none has. */
  p50TtftMs: number | null;
  p95TtftMs: number | null;
  p99TtftMs: number | null;
  coldStarts: number;
  promptTokens: number;
  completionTokens: number;
}

/** One (bucket, model) cell of the traffic summary. */
export interface TrafficBucket extends TrafficOverallBucket {
  model: string;
}

export interface TrafficSummary {
  /** Per bucket and model, ordered by bucket then model. */
  buckets: TrafficBucket[];
  /**
   * Per bucket over every model, ordered by bucket: its own grouping, since percentiles cannot
   * be merged from the per-model rows. With `model`, the same numbers as `buckets`.
   */
  overall: TrafficOverallBucket[];
}

/** `model`: one row per (bucket, model); `overall`: one row per bucket. */
export type TrafficGrouping = "model" | "overall";

/** Each percentile's column suffix and its fraction, written into the SQL as a literal. */
const PERCENTILES = [
  ["p50", "0.5"],
  ["p95", "0.95"],
  ["p99", "0.99"],
] as const;

/**
 * Requests per time bucket, per model and over all models, aggregated by the database: counts,
 * averages, maxima and latency and ttft percentiles. Each statement reads only the window, through
 * the (at) index, or the (model, at) index when a model is given; with a model, `overall` is that
 * model's rows without a second statement.
 */
export const trafficSummary = (db: CortexDb, query: TrafficQuery): TrafficSummary => {
  const buckets = db.all<TrafficBucket>(trafficSummaryQuery(query, "model"));
  const overall =
    query.model === undefined
      ? db.all<TrafficOverallBucket>(trafficSummaryQuery(query, "overall"))
      : buckets.map(({ model: _model, ...rest }) => rest);
  return { buckets, overall };
};

/**
 * The statement behind one half of trafficSummary (tests check its query plan). Standard SQL
 * with window functions only, so it runs unchanged on PostgreSQL.
 *
 * Percentiles are nearest-rank, from `cume_dist()`: the share of the bucket's values at or below
 * this one, ties included. The smallest value whose share reaches p is the value at rank
 * ceil(p·n): the row at that rank has a share of at least ceil(p·n)/n ≥ p, and every smaller
 * value lies wholly below that rank, with a share of at most (ceil(p·n) − 1)/n < p. Comparing
 * the double k/n with the literal p is exact: both are the rounded real, and a k/n that differs
 * from p differs by at least 1/(100·n), far above a double's rounding for any count a bucket
 * holds. One sort per series and no second window for n: ROW_NUMBER with COUNT OVER took two
 * to three times as long per series on 200,000 rows.
 */
export const trafficSummaryQuery = (query: TrafficQuery, grouping: TrafficGrouping): SQL => {
  const { sinceMs, bucketMs, model } = query;
  if (!Number.isSafeInteger(bucketMs) || bucketMs <= 0)
    throw new RangeError(`bucketMs must be a positive integer, got ${bucketMs}`);
  const perModel = grouping === "model";
  // `at - at % width` keeps the arithmetic in integers whatever type the driver binds.
  const bucket = sql`${requestLog.at} - ${requestLog.at} % ${bucketMs}`;
  const keys = sql.raw(perModel ? "bucket, model" : "bucket");
  const keyColumns = perModel
    ? sql`${bucket} as bucket, ${requestLog.model} as model`
    : sql`${bucket} as bucket`;
  const partition = perModel ? sql`${bucket}, ${requestLog.model}` : bucket;
  const inWindow =
    model === undefined
      ? sql`${requestLog.at} >= ${sinceMs}`
      : sql`${requestLog.at} >= ${sinceMs} and ${requestLog.model} = ${model}`;
  const joinOn = (cte: string) =>
    sql.raw(`${cte}.bucket = totals.bucket${perModel ? ` and ${cte}.model = totals.model` : ""}`);

  // Each series ranked within its bucket (and model): only the column it needs, so the window's
  // sort carries narrow rows. Rows below the smallest percentile are dropped before grouping.
  const ranked = (column: typeof requestLog.latencyMs | typeof requestLog.ttftMs) => sql`
    select ${keyColumns}, ${column} as ms,
      cume_dist() over (partition by ${partition} order by ${column}) as cumulative
    from ${requestLog}
    where ${inWindow} and ${column} is not null`;
  const picked = (cte: string) => sql`
    select ${keys}, ${sql.raw(
      PERCENTILES.map(
        ([name, fraction]) => `min(case when cumulative >= ${fraction} then ms end) as ${name}`,
      ).join(", "),
    )}
    from ${sql.raw(cte)}
    where cumulative >= ${sql.raw(PERCENTILES[0][1])}
    group by ${keys}`;
  const percentileColumns = (cte: string, series: string) =>
    sql.raw(PERCENTILES.map(([name]) => `${cte}.${name} as "${name}${series}"`).join(", "));

  return sql`
    with totals as (
      select ${keyColumns},
        count(*) as requests,
        sum(case when ${requestLog.status} >= 400 then 1 else 0 end) as errors,
        avg(${requestLog.latencyMs}) as avg_latency_ms,
        max(${requestLog.latencyMs}) as max_latency_ms,
        avg(${requestLog.ttftMs}) as avg_ttft_ms,
        sum(case when ${requestLog.coldStart} <> 0 then 1 else 0 end) as cold_starts,
        coalesce(sum(${requestLog.promptTokens}), 0) as prompt_tokens,
        coalesce(sum(${requestLog.completionTokens}), 0) as completion_tokens
      from ${requestLog}
      where ${inWindow}
      group by ${keys}
    ),
    latency_ranked as (${ranked(requestLog.latencyMs)}),
    latency as (${picked("latency_ranked")}),
    ttft_ranked as (${ranked(requestLog.ttftMs)}),
    ttft as (${picked("ttft_ranked")})
    select totals.bucket as bucket,${sql.raw(perModel ? " totals.model as model," : "")}
      totals.requests as requests,
      totals.errors as errors,
      totals.avg_latency_ms as "avgLatencyMs",
      totals.max_latency_ms as "maxLatencyMs",
      ${percentileColumns("latency", "LatencyMs")},
      totals.avg_ttft_ms as "avgTtftMs",
      ${percentileColumns("ttft", "TtftMs")},
      totals.cold_starts as "coldStarts",
      totals.prompt_tokens as "promptTokens",
      totals.completion_tokens as "completionTokens"
    from totals
    left join latency on ${joinOn("latency")}
    left join ttft on ${joinOn("ttft")}
    order by ${sql.raw(perModel ? "totals.bucket, totals.model" : "totals.bucket")}`;
};
