import { describe, expect, it } from "vitest";
import {
  type TrafficAnswer,
  type TrafficBucket,
  trafficSeries,
  trafficSummaries,
} from "./traffic.js";

const START = Date.parse("2025-06-15T12:00:00Z");

const row = (
  minute: number,
  model: string,
  fields: Partial<TrafficBucket> = {},
): TrafficBucket => ({
  bucket: START + minute * 60_000,
  model,
  requests: 60,
  errors: 0,
  avgLatencyMs: 100,
  maxLatencyMs: 200,
  avgTtftMs: 50,
  coldStarts: 0,
  promptTokens: 10,
  completionTokens: 20,
  ...fields,
});

const answer: TrafficAnswer = {
  since: new Date(START).toISOString(),
  bucket_s: 60,
  buckets: [
    row(0, "a", { requests: 60, avgLatencyMs: 100, errors: 6, coldStarts: 1 }),
    row(0, "b", { requests: 120, avgLatencyMs: 400, maxLatencyMs: 900, avgTtftMs: null }),
    row(2, "a", { requests: 30, avgLatencyMs: 300 }),
  ],
};
const NOW = START + 3 * 60_000 + 10_000;

describe("trafficSeries", () => {
  it("fills the whole window, one point per bucket, zeros where nothing ran", () => {
    const series = trafficSeries(answer, null, NOW);
    expect(series.x).toEqual([0, 1, 2, 3].map((m) => (START + m * 60_000) / 1000));
    expect(series.models).toEqual(["a", "b"]);
    expect(series.perSecond.get("a")).toEqual([1, 0, 0.5, 0]);
    expect(series.perSecond.get("b")).toEqual([2, 0, 0, 0]);
    expect(series.total).toEqual([3, 0, 0.5, 0]);
  });

  it("weights averages by requests across models, and leaves gaps where nothing ran", () => {
    const series = trafficSeries(answer, null, NOW);
    expect(series.avgLatencyMs).toEqual([300, null, 300, null]);
    expect(series.maxLatencyMs).toEqual([900, null, 200, null]);
    // Only model a reported a time to first token in the first minute.
    expect(series.avgTtftMs).toEqual([50, null, 50, null]);
    expect(series.errorPct).toEqual([(6 / 180) * 100, null, 0, null]);
    expect(series.coldStarts).toEqual([1, 0, 0, 0]);
  });

  it("narrows latency and errors to one model", () => {
    const series = trafficSeries(answer, "b", NOW);
    expect(series.avgLatencyMs).toEqual([400, null, null, null]);
    expect(series.avgTtftMs).toEqual([null, null, null, null]);
    expect(series.total).toEqual([3, 0, 0.5, 0]);
  });
});

describe("trafficSummaries", () => {
  it("sums per model, busiest first, then all models", () => {
    const summaries = trafficSummaries(answer, START + 100_000);
    expect(summaries.map((s) => [s.model, s.requests, s.errors, s.avgLatencyMs])).toEqual([
      ["b", 120, 0, 400],
      ["a", 90, 6, (60 * 100 + 30 * 300) / 90],
      [null, 210, 6, (60 * 100 + 120 * 400 + 30 * 300) / 210],
    ]);
    expect(summaries.at(-1)?.perSecond).toBeCloseTo(2.1);
    expect(summaries.at(-1)?.maxLatencyMs).toBe(900);
    expect(summaries.at(-1)?.coldStarts).toBe(1);
  });

  it("has only the total for an empty window", () => {
    const summaries = trafficSummaries({ ...answer, buckets: [] }, NOW);
    expect(summaries).toEqual([
      expect.objectContaining({ model: null, requests: 0, avgLatencyMs: null, maxLatencyMs: null }),
    ]);
  });
});
