import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it } from "vitest";
import { type CortexState, openState } from "./database.js";
import {
  type TrafficGrouping,
  type TrafficOverallBucket,
  type TrafficQuery,
  trafficSummary,
  trafficSummaryQuery,
} from "./queries.js";
import { RequestLog, type RequestLogEntry } from "./request-log.js";

const MINUTE = 60_000;
const T0 = 1_767_225_600_000; // a whole minute

const request = (atMs: number, overrides: Partial<RequestLogEntry> = {}): RequestLogEntry => ({
  at: atMs,
  requestId: `r-${atMs}`,
  model: "llama",
  node: "gpu-1",
  status: 200,
  latencyMs: 10,
  ttftMs: null,
  promptTokens: 1,
  completionTokens: 2,
  stream: false,
  coldStart: false,
  ...overrides,
});

/** Nearest rank, as the SQL should compute it: the value at rank ceil(p·n), ascending. */
const nearestRank = (values: readonly number[], percent: number): number | null => {
  const sorted = [...values].sort((a, b) => a - b);
  // Whole percents keep ceil(p·n) in integer arithmetic.
  return sorted[Math.ceil((percent * sorted.length) / 100) - 1] ?? null;
};

/** The percentile fields of a traffic row, for comparing them alone. */
const percentiles = (row: Partial<TrafficOverallBucket> | undefined) => ({
  p50LatencyMs: row?.p50LatencyMs,
  p95LatencyMs: row?.p95LatencyMs,
  p99LatencyMs: row?.p99LatencyMs,
  p50TtftMs: row?.p50TtftMs,
  p95TtftMs: row?.p95TtftMs,
  p99TtftMs: row?.p99TtftMs,
});

const percentilesOf = (latencies: readonly number[], ttfts: readonly number[]) => ({
  p50LatencyMs: nearestRank(latencies, 50),
  p95LatencyMs: nearestRank(latencies, 95),
  p99LatencyMs: nearestRank(latencies, 99),
  p50TtftMs: nearestRank(ttfts, 50),
  p95TtftMs: nearestRank(ttfts, 95),
  p99TtftMs: nearestRank(ttfts, 99),
});

describe("trafficSummary", () => {
  let state: CortexState | undefined;

  afterEach(() => {
    state?.close();
    state = undefined;
  });

  const seed = (entries: RequestLogEntry[]): CortexState => {
    const opened = openState(":memory:");
    const log = new RequestLog(opened.db);
    for (const entry of entries) log.record(entry);
    log.close();
    return opened;
  };

  /** Requests in the bucket at T0 with these latencies (and ttfts, null where not given). */
  const latencies = (model: string, values: readonly number[], ttfts: (number | null)[] = []) =>
    values.map((latencyMs, i) =>
      request(T0 + i, {
        requestId: `${model}-${i}`,
        model,
        latencyMs,
        ttftMs: ttfts[i] ?? null,
      }),
    );

  it("aggregates per bucket and model in SQL", () => {
    state = seed([
      request(T0 - 1), // before sinceMs
      request(T0, {
        latencyMs: 10,
        ttftMs: 4,
        promptTokens: 5,
        completionTokens: 7,
        coldStart: true,
      }),
      request(T0 + 1_000, {
        latencyMs: 30,
        ttftMs: null,
        promptTokens: null,
        completionTokens: null,
      }),
      request(T0 + 59_999, { latencyMs: 20, ttftMs: 8, status: 503, errorCode: "no_capacity" }),
      request(T0 + 5_000, { model: "qwen", latencyMs: 7.5, status: 404 }),
      request(T0 + MINUTE, { latencyMs: 1, status: 399 }),
      request(T0 + 3 * MINUTE + 1, { latencyMs: 2, status: 400, coldStart: true }),
    ]);

    const { buckets, overall } = trafficSummary(state.db, { sinceMs: T0, bucketMs: MINUTE });
    expect(buckets).toEqual([
      {
        bucket: T0,
        model: "llama",
        requests: 3,
        errors: 1,
        avgLatencyMs: 20,
        maxLatencyMs: 30,
        p50LatencyMs: 20,
        p95LatencyMs: 30,
        p99LatencyMs: 30,
        avgTtftMs: 6,
        p50TtftMs: 4,
        p95TtftMs: 8,
        p99TtftMs: 8,
        coldStarts: 1,
        promptTokens: 6,
        completionTokens: 9,
      },
      {
        bucket: T0,
        model: "qwen",
        requests: 1,
        errors: 1,
        avgLatencyMs: 7.5,
        maxLatencyMs: 7.5,
        p50LatencyMs: 7.5,
        p95LatencyMs: 7.5,
        p99LatencyMs: 7.5,
        avgTtftMs: null,
        p50TtftMs: null,
        p95TtftMs: null,
        p99TtftMs: null,
        coldStarts: 0,
        promptTokens: 1,
        completionTokens: 2,
      },
      expect.objectContaining({ bucket: T0 + MINUTE, model: "llama", requests: 1, errors: 0 }),
      expect.objectContaining({
        bucket: T0 + 3 * MINUTE,
        model: "llama",
        requests: 1,
        errors: 1,
        coldStarts: 1,
      }),
    ]);
    expect(overall).toEqual([
      {
        bucket: T0,
        requests: 4,
        errors: 2,
        avgLatencyMs: (10 + 30 + 20 + 7.5) / 4,
        maxLatencyMs: 30,
        // 7.5, 10, 20, 30: ranks 2, 4 and 4.
        p50LatencyMs: 10,
        p95LatencyMs: 30,
        p99LatencyMs: 30,
        avgTtftMs: 6,
        p50TtftMs: 4,
        p95TtftMs: 8,
        p99TtftMs: 8,
        coldStarts: 1,
        promptTokens: 7,
        completionTokens: 11,
      },
      expect.objectContaining({ bucket: T0 + MINUTE, requests: 1, p50LatencyMs: 1 }),
      expect.objectContaining({ bucket: T0 + 3 * MINUTE, requests: 1, p99LatencyMs: 2 }),
    ]);
  });

  it.each([
    // n = 1: every percentile is the one value.
    { values: [7], p50: 7, p95: 7, p99: 7 },
    // Odd: ranks ceil(2.5) = 3, ceil(4.75) = 5, ceil(4.95) = 5; stored out of order.
    { values: [50, 10, 40, 20, 30], p50: 30, p95: 50, p99: 50 },
    // Even: ranks 2, ceil(3.8) = 4, 4.
    { values: [40, 10, 30, 20], p50: 20, p95: 40, p99: 40 },
    // Ties: ranks 2, 4, 4.
    { values: [5, 9, 5, 5], p50: 5, p95: 9, p99: 9 },
    { values: [3, 3, 3, 3, 3, 3], p50: 3, p95: 3, p99: 3 },
    // p·n whole: ranks exactly 10, 19 and ceil(19.8) = 20, not one past them.
    { values: Array.from({ length: 20 }, (_, i) => 20 - i), p50: 10, p95: 19, p99: 20 },
    { values: Array.from({ length: 100 }, (_, i) => i + 1), p50: 50, p95: 95, p99: 99 },
    { values: Array.from({ length: 101 }, (_, i) => i + 1), p50: 51, p95: 96, p99: 100 },
  ])("takes nearest-rank percentiles of $values.length latencies", ({ values, p50, p95, p99 }) => {
    state = seed(latencies("llama", values, values));
    const { buckets, overall } = trafficSummary(state.db, { sinceMs: T0, bucketMs: MINUTE });
    const expected = {
      p50LatencyMs: p50,
      p95LatencyMs: p95,
      p99LatencyMs: p99,
      p50TtftMs: p50,
      p95TtftMs: p95,
      p99TtftMs: p99,
    };
    expect(buckets.map(percentiles)).toEqual([expected]);
    expect(overall.map(percentiles)).toEqual([expected]);
  });

  it("takes ttft percentiles over the requests that have one", () => {
    state = seed([
      ...latencies("llama", [1, 2, 3, 4, 5], [null, 8, null, 4, 6]),
      ...latencies("qwen", [9, 9], [null, null]),
    ]);
    const { buckets, overall } = trafficSummary(state.db, { sinceMs: T0, bucketMs: MINUTE });
    expect(buckets.map((row) => [row.model, row.avgTtftMs, row.p50TtftMs, row.p95TtftMs])).toEqual([
      // 4, 6, 8: ranks 2 and 3; the three nulls count for neither n nor rank.
      ["llama", 6, 6, 8],
      ["qwen", null, null, null],
    ]);
    expect(buckets[1]).toEqual(
      expect.objectContaining({ p50LatencyMs: 9, p99LatencyMs: 9, p99TtftMs: null }),
    );
    // Over both models: 7 latencies (rank 4 is 4), the same 3 ttfts.
    expect(percentiles(overall[0])).toEqual({
      p50LatencyMs: 4,
      p95LatencyMs: 9,
      p99LatencyMs: 9,
      p50TtftMs: 6,
      p95TtftMs: 8,
      p99TtftMs: 8,
    });
  });

  it("groups every model together for overall, not by merging the per-model rows", () => {
    state = seed([
      ...latencies("llama", [10, 20, 30, 40, 50], [1, 2, 3, 4, 5]),
      ...latencies("qwen", [40, 10, 30, 20], [100, null, 300, 200]),
      ...latencies("tiny", [7]),
    ]);
    const { buckets, overall } = trafficSummary(state.db, { sinceMs: T0, bucketMs: MINUTE });
    expect(buckets.map((row) => [row.model, row.p50LatencyMs, row.p95LatencyMs])).toEqual([
      ["llama", 30, 50],
      ["qwen", 20, 40],
      ["tiny", 7, 7],
    ]);
    // 7 10 10 20 20 30 30 40 40 50: rank 5 is 20, ranks 10 and 10 are 50. Ttfts: 1 2 3 4 5 100
    // 200 300, ranks 4, 8 and 8.
    expect(overall).toEqual([
      expect.objectContaining({
        bucket: T0,
        requests: 10,
        avgLatencyMs: 25.7,
        maxLatencyMs: 50,
        p50LatencyMs: 20,
        p95LatencyMs: 50,
        p99LatencyMs: 50,
        p50TtftMs: 4,
        p95TtftMs: 300,
        p99TtftMs: 300,
      }),
    ]);
    expect(overall[0]).not.toHaveProperty("model");
  });

  it.each([1, 2, 3, 19, 20, 21, 99, 100, 101, 250])(
    "matches a nearest-rank reference on %i requests with ties and missing ttfts",
    (count) => {
      // A fixed pseudo-random sequence over few distinct values, so ties are common.
      let next = count;
      const random = () => {
        next = (next * 16_807) % 2_147_483_647;
        return next;
      };
      const entries = Array.from({ length: count }, (_, i) =>
        request(T0 + i * 100, {
          requestId: `r-${i}`,
          model: random() % 2 === 0 ? "llama" : "qwen",
          latencyMs: random() % 17,
          ttftMs: random() % 3 === 0 ? null : (random() % 11) / 4,
        }),
      );
      state = seed(entries);
      const { buckets, overall } = trafficSummary(state.db, { sinceMs: T0, bucketMs: MINUTE });
      const expectedOf = (rows: RequestLogEntry[]) =>
        percentilesOf(
          rows.map((row) => row.latencyMs),
          rows.flatMap((row) =>
            row.ttftMs === null || row.ttftMs === undefined ? [] : [row.ttftMs],
          ),
        );
      for (const row of buckets)
        expect(percentiles(row)).toEqual(
          expectedOf(
            entries.filter(
              (entry) => entry.model === row.model && entry.at - (entry.at % MINUTE) === row.bucket,
            ),
          ),
        );
      for (const row of overall)
        expect(percentiles(row)).toEqual(
          expectedOf(entries.filter((entry) => entry.at - (entry.at % MINUTE) === row.bucket)),
        );
      expect(buckets.reduce((sum, row) => sum + row.requests, 0)).toBe(count);
      expect(overall.reduce((sum, row) => sum + row.requests, 0)).toBe(count);
    },
  );

  it("ranks within each bucket: the last millisecond of one, the first of the next", () => {
    state = seed([
      request(T0, { latencyMs: 1 }),
      request(T0 + MINUTE - 1, { latencyMs: 100 }),
      request(T0 + MINUTE, { latencyMs: 5 }),
      request(T0 + MINUTE + 1, { latencyMs: 7 }),
    ]);
    const { buckets, overall } = trafficSummary(state.db, { sinceMs: T0, bucketMs: MINUTE });
    expect(
      buckets.map((row) => [row.bucket, row.requests, row.p50LatencyMs, row.p99LatencyMs]),
    ).toEqual([
      [T0, 2, 1, 100],
      [T0 + MINUTE, 2, 5, 7],
    ]);
    expect(overall.map((row) => [row.bucket, row.p50LatencyMs, row.p99LatencyMs])).toEqual([
      [T0, 1, 100],
      [T0 + MINUTE, 5, 7],
    ]);
  });

  it("counts only requests from sinceMs on, in every series", () => {
    state = seed([
      request(T0 + 10_000 - 1, { latencyMs: 1_000, ttftMs: 1_000 }),
      request(T0 + 10_000, { latencyMs: 3, ttftMs: 2 }),
      request(T0 + 20_000, { latencyMs: 4, ttftMs: 1 }),
    ]);
    const { buckets, overall } = trafficSummary(state.db, {
      sinceMs: T0 + 10_000,
      bucketMs: MINUTE,
    });
    const expected = {
      bucket: T0,
      requests: 2,
      maxLatencyMs: 4,
      p50LatencyMs: 3,
      p99LatencyMs: 4,
      p50TtftMs: 1,
      p99TtftMs: 2,
    };
    expect(buckets).toEqual([expect.objectContaining({ ...expected, model: "llama" })]);
    expect(overall).toEqual([expect.objectContaining(expected)]);
  });

  it("filters by model and uses wider buckets; overall then holds the same numbers", () => {
    state = seed([
      request(T0, { latencyMs: 1 }),
      request(T0 + 4 * MINUTE, { latencyMs: 3 }),
      request(T0 + 2 * MINUTE, { model: "qwen", latencyMs: 2 }),
    ]);
    const { buckets, overall } = trafficSummary(state.db, {
      sinceMs: 0,
      bucketMs: 5 * MINUTE,
      model: "llama",
    });
    expect(buckets).toEqual([
      expect.objectContaining({
        bucket: T0,
        model: "llama",
        requests: 2,
        avgLatencyMs: 2,
        maxLatencyMs: 3,
        p50LatencyMs: 1,
        p95LatencyMs: 3,
      }),
    ]);
    expect(overall).toEqual(buckets.map(({ model: _model, ...rest }) => rest));
  });

  it("is empty without traffic and refuses a bucket that is not a positive integer", () => {
    state = openState(":memory:");
    expect(trafficSummary(state.db, { sinceMs: 0, bucketMs: MINUTE })).toEqual({
      buckets: [],
      overall: [],
    });
    for (const bucketMs of [0, -1, 1.5, Number.NaN])
      expect(() =>
        trafficSummary(state?.db as CortexState["db"], { sinceMs: 0, bucketMs }),
      ).toThrow(RangeError);
  });

  it("reads only the window, through the (at) and (model, at) indexes", () => {
    const opened = openState(":memory:");
    state = opened;
    const plan = (query: TrafficQuery, grouping: TrafficGrouping): string[] =>
      opened.db
        .all<{ detail: string }>(sql`explain query plan ${trafficSummaryQuery(query, grouping)}`)
        .map((row) => row.detail);
    for (const grouping of ["model", "overall"] as const) {
      const all = plan({ sinceMs: T0, bucketMs: MINUTE }, grouping);
      const one = plan({ sinceMs: T0, bucketMs: MINUTE, model: "llama" }, grouping);
      // Three reads of the table (totals, latency, ttft), each a range search, never a scan.
      expect(
        all.filter((step) => step.includes("USING INDEX request_log_at_idx (at>?)")),
      ).toHaveLength(3);
      expect(
        one.filter((step) =>
          step.includes("USING INDEX request_log_model_at_idx (model=? AND at>?)"),
        ),
      ).toHaveLength(3);
      for (const step of [...all, ...one]) expect(step).not.toMatch(/SCAN request_log/);
    }
  });
});
