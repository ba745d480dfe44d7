import { afterEach, describe, expect, it } from "vitest";
import { type CortexState, openState } from "./database.js";
import { type TrafficQuery, trafficSummary, trafficSummaryQuery } from "./queries.js";
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

    expect(trafficSummary(state.db, { sinceMs: T0, bucketMs: MINUTE })).toEqual([
      {
        bucket: T0,
        model: "llama",
        requests: 3,
        errors: 1,
        avgLatencyMs: 20,
        maxLatencyMs: 30,
        avgTtftMs: 6,
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
        avgTtftMs: null,
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
  });

  it("filters by model and uses wider buckets", () => {
    state = seed([
      request(T0, { latencyMs: 1 }),
      request(T0 + 4 * MINUTE, { latencyMs: 3 }),
      request(T0 + 2 * MINUTE, { model: "qwen" }),
    ]);
    const rows = trafficSummary(state.db, { sinceMs: 0, bucketMs: 5 * MINUTE, model: "llama" });
    expect(rows).toEqual([
      expect.objectContaining({
        bucket: T0,
        model: "llama",
        requests: 2,
        avgLatencyMs: 2,
        maxLatencyMs: 3,
      }),
    ]);
  });

  it("is empty without traffic and refuses a bucket that is not a positive integer", () => {
    state = openState(":memory:");
    expect(trafficSummary(state.db, { sinceMs: 0, bucketMs: MINUTE })).toEqual([]);
    for (const bucketMs of [0, -1, 1.5, Number.NaN])
      expect(() =>
        trafficSummary(state?.db as CortexState["db"], { sinceMs: 0, bucketMs }),
      ).toThrow(RangeError);
  });

  it("lets SQLite use the (at) and (model, at) indexes", () => {
    const opened = openState(":memory:");
    state = opened;
    const plan = (query: TrafficQuery): string => {
      const { sql, params } = trafficSummaryQuery(opened.db, query).toSQL();
      return opened.sqlite
        .prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .all(...params)
        .map((row) => (row as { detail: string }).detail)
        .join("\n");
    };
    expect(plan({ sinceMs: T0, bucketMs: MINUTE })).toContain("request_log_at_idx");
    expect(plan({ sinceMs: T0, bucketMs: MINUTE, model: "llama" })).toContain(
      "request_log_model_at_idx",
    );
  });
});
