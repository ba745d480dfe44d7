// `GET /api/traffic` turned into chart series and a per-model summary. The API answers one row
// per (bucket, model) with requests; buckets without requests are absent, so the series are
// filled with zeros (rates) or gaps (latencies) over the whole window.

export interface TrafficBucket {
  /** Start of the bucket, epoch ms. */
  readonly bucket: number;
  readonly model: string;
  readonly requests: number;
  readonly errors: number;
  readonly avgLatencyMs: number;
  readonly maxLatencyMs: number;
  readonly avgTtftMs: number | null;
  readonly coldStarts: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
}

export interface TrafficAnswer {
  readonly since: string;
  readonly bucket_s: number;
  readonly buckets: readonly TrafficBucket[];
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
  /** For the scope (one model or all): latency, ttft, error rate, cold starts. */
  readonly avgLatencyMs: (number | null)[];
  readonly maxLatencyMs: (number | null)[];
  readonly avgTtftMs: (number | null)[];
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

/** Averages are per bucket and model; weighting them by requests gives the overall average. */
const add = (acc: Accumulator, row: TrafficBucket): void => {
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

/** Per model (busiest first), then the total over all of them. */
export const trafficSummaries = (answer: TrafficAnswer, nowMs: number): TrafficSummary[] => {
  const seconds = Math.max(1, (nowMs - Date.parse(answer.since)) / 1000);
  const all = empty();
  const perModel = new Map<string, Accumulator>();
  for (const row of answer.buckets) {
    add(all, row);
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

/** `scope`: one model's latency and error series, or null for every model together. */
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
  const indexOf = (bucket: number): number => Math.round((bucket - first) / width);

  const models = [...new Set(answer.buckets.map((row) => row.model))].sort((a, b) =>
    a.localeCompare(b),
  );
  const perSecond = new Map(models.map((model) => [model, new Array<number>(count).fill(0)]));
  const total = new Array<number>(count).fill(0);
  const scoped = Array.from({ length: count }, empty);
  for (const row of answer.buckets) {
    const i = indexOf(row.bucket);
    if (i < 0 || i >= count) continue;
    const rate = row.requests / answer.bucket_s;
    const series = perSecond.get(row.model);
    if (series) series[i] = (series[i] ?? 0) + rate;
    total[i] = (total[i] ?? 0) + rate;
    const acc = scoped[i];
    if (acc && (scope === null || row.model === scope)) add(acc, row);
  }
  return {
    x,
    models,
    perSecond,
    total,
    avgLatencyMs: scoped.map((acc) => (acc.requests > 0 ? acc.latencySum / acc.requests : null)),
    maxLatencyMs: scoped.map((acc) => acc.maxLatency),
    avgTtftMs: scoped.map((acc) => (acc.ttftWeight > 0 ? acc.ttftSum / acc.ttftWeight : null)),
    errorPct: scoped.map((acc) => (acc.requests > 0 ? (acc.errors / acc.requests) * 100 : null)),
    coldStarts: scoped.map((acc) => acc.coldStarts),
  };
};
