// `GET /api/traffic` turned into chart series and a per-model summary. The API answers one row
// per (bucket, model) with requests, and one per bucket over all models (`overall`, whose
// percentiles the database computed over every request: percentiles cannot be merged from the
// per-model rows). Buckets without requests are absent, so the series are filled with zeros
// (rates) or gaps (latencies) over the whole window.

/** One bucket over all models. Percentiles are nearest-rank, per bucket. */
export interface TrafficOverallBucket {
  /** Start of the bucket, epoch ms. */
  readonly bucket: number;
  readonly requests: number;
  readonly errors: number;
  readonly avgLatencyMs: number;
  readonly maxLatencyMs: number;
  readonly p50LatencyMs: number;
  readonly p95LatencyMs: number;
  readonly p99LatencyMs: number;
  /** Null when no request of the bucket has a time to first token. */
  readonly avgTtftMs: number | null;
  readonly p50TtftMs: number | null;
  readonly p95TtftMs: number | null;
  readonly p99TtftMs: number | null;
  readonly coldStarts: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
}

/** One bucket of one model. */
export interface TrafficBucket extends TrafficOverallBucket {
  readonly model: string;
}

export interface TrafficAnswer {
  readonly since: string;
  readonly bucket_s: number;
  readonly buckets: readonly TrafficBucket[];
  readonly overall: readonly TrafficOverallBucket[];
}

/** Totals over the window for one model, or for all of them (`model: null`). */
export interface TrafficSummary {
  readonly model: string | null;
  readonly requests: number;
  readonly perSecond: number;
  readonly errors: number;
  readonly avgLatencyMs: number | null;
  readonly maxLatencyMs: number | null;
  readonly avgTtftMs: number | null;
  readonly coldStarts: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
}

/** Aligned series for uPlot: x in Unix seconds, one value per bucket. */
export interface TrafficSeries {
  readonly x: number[];
  readonly models: string[];
  /** Requests per second per model, and `total`. */
  readonly perSecond: ReadonlyMap<string, number[]>;
  readonly total: number[];
  /** For the scope (one model or all): latency and ttft percentiles, error rate, cold starts. */
  readonly p50LatencyMs: (number | null)[];
  readonly p95LatencyMs: (number | null)[];
  readonly p99LatencyMs: (number | null)[];
  readonly p50TtftMs: (number | null)[];
  readonly p95TtftMs: (number | null)[];
  readonly p99TtftMs: (number | null)[];
  readonly errorPct: (number | null)[];
  readonly coldStarts: number[];
}

interface Accumulator {
  requests: number;
  errors: number;
  latencySum: number;
  maxLatency: number | null;
  ttftSum: number;
  ttftWeight: number;
  coldStarts: number;
  promptTokens: number;
  completionTokens: number;
}

const empty = (): Accumulator => ({
  requests: 0,
  errors: 0,
  latencySum: 0,
  maxLatency: null,
  ttftSum: 0,
  ttftWeight: 0,
  coldStarts: 0,
  promptTokens: 0,
  completionTokens: 0,
});

/** Averages are per bucket; weighting them by requests gives the average over the window. */
const add = (acc: Accumulator, row: TrafficOverallBucket): void => {
  acc.requests += row.requests;
  acc.errors += row.errors;
  acc.latencySum += row.avgLatencyMs * row.requests;
  acc.maxLatency = Math.max(acc.maxLatency ?? 0, row.maxLatencyMs);
  if (row.avgTtftMs !== null) {
    acc.ttftSum += row.avgTtftMs * row.requests;
    acc.ttftWeight += row.requests;
  }
  acc.coldStarts += row.coldStarts;
  acc.promptTokens += row.promptTokens;
  acc.completionTokens += row.completionTokens;
};

const summaryOf = (model: string | null, acc: Accumulator, seconds: number): TrafficSummary => ({
  model,
  requests: acc.requests,
  perSecond: seconds > 0 ? acc.requests / seconds : 0,
  errors: acc.errors,
  avgLatencyMs: acc.requests > 0 ? acc.latencySum / acc.requests : null,
  maxLatencyMs: acc.maxLatency,
  avgTtftMs: acc.ttftWeight > 0 ? acc.ttftSum / acc.ttftWeight : null,
  coldStarts: acc.coldStarts,
  promptTokens: acc.promptTokens,
  completionTokens: acc.completionTokens,
});

/**
 * Per model (busiest first), then the total over all of them: counts, averages and maxima over
 * the window, which add up across buckets (percentiles do not, so there are none here).
 */
export const trafficSummaries = (answer: TrafficAnswer, nowMs: number): TrafficSummary[] => {
  const seconds = Math.max(1, (nowMs - Date.parse(answer.since)) / 1000);
  const all = empty();
  for (const row of answer.overall) add(all, row);
  const perModel = new Map<string, Accumulator>();
  for (const row of answer.buckets) {
    const acc = perModel.get(row.model) ?? empty();
    add(acc, row);
    perModel.set(row.model, acc);
  }
  return [
    ...[...perModel]
      .map(([model, acc]) => summaryOf(model, acc, seconds))
      .sort((a, b) => b.requests - a.requests || (a.model ?? "").localeCompare(b.model ?? "")),
    summaryOf(null, all, seconds),
  ];
};

/**
 * `scope`: one model's latency, ttft and error series, or null for every model together (the
 * answer's `overall` rows). Each bucket's percentiles are the API's, never recombined here.
 */
export const trafficSeries = (
  answer: TrafficAnswer,
  scope: string | null,
  nowMs: number,
): TrafficSeries => {
  const width = answer.bucket_s * 1000;
  const sinceMs = Date.parse(answer.since);
  const first = sinceMs - (sinceMs % width);
  const count = Math.max(1, Math.floor((nowMs - first) / width) + 1);
  const x = Array.from({ length: count }, (_, i) => (first + i * width) / 1000);
  const indexOf = (bucket: number): number | null => {
    const i = Math.round((bucket - first) / width);
    return i >= 0 && i < count ? i : null;
  };

  const models = [...new Set(answer.buckets.map((row) => row.model))].sort((a, b) =>
    a.localeCompare(b),
  );
  const perSecond = new Map(models.map((model) => [model, new Array<number>(count).fill(0)]));
  for (const row of answer.buckets) {
    const i = indexOf(row.bucket);
    const series = perSecond.get(row.model);
    if (i !== null && series) series[i] = (series[i] ?? 0) + row.requests / answer.bucket_s;
  }
  const total = new Array<number>(count).fill(0);
  for (const row of answer.overall) {
    const i = indexOf(row.bucket);
    if (i !== null) total[i] = (total[i] ?? 0) + row.requests / answer.bucket_s;
  }

  // At most one row per bucket in the scope: the overall row, or the model's.
  const scoped = new Array<TrafficOverallBucket | undefined>(count).fill(undefined);
  const rows =
    scope === null ? answer.overall : answer.buckets.filter((row) => row.model === scope);
  for (const row of rows) {
    const i = indexOf(row.bucket);
    if (i !== null) scoped[i] = row;
  }
  const pick = (field: (row: TrafficOverallBucket) => number | null) =>
    scoped.map((row) => (row === undefined ? null : field(row)));
  return {
    x,
    models,
    perSecond,
    total,
    p50LatencyMs: pick((row) => row.p50LatencyMs),
    p95LatencyMs: pick((row) => row.p95LatencyMs),
    p99LatencyMs: pick((row) => row.p99LatencyMs),
    p50TtftMs: pick((row) => row.p50TtftMs),
    p95TtftMs: pick((row) => row.p95TtftMs),
    p99TtftMs: pick((row) => row.p99TtftMs),
    errorPct: pick((row) => (row.requests > 0 ? (row.errors / row.requests) * 100 : null)),
    coldStarts: scoped.map((row) => row?.coldStarts ?? 0),
  };
};

/**
 * How a model of the request log is named in charts, pickers and tables. Cortex logs a model
 * it does not know (a name a client made up) as `unknown`, and a request that named none (it
 * failed before) as `none`; a catalogue model of that name keeps its name.
 */
export const trafficModelLabel = (model: string, known: ReadonlySet<string>): string => {
  if (known.has(model)) return model;
  if (model === "unknown") return "unknown models (not in the catalogue)";
  if (model === "none") return "no model named (rejected early)";
  return model;
};
