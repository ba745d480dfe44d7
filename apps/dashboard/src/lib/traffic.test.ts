import { describe, expect, it } from "vitest";
import {
  type TrafficAnswer,
  type TrafficBucket,
  type TrafficOverallBucket,
  trafficModelLabel,
  trafficSeries,
  trafficSummaries,
} from "./traffic.js";

const START = Date.parse("2025-06-15T12:00:00Z");

const overallRow = (
  minute: number,
  fields: Partial<TrafficOverallBucket> = {},
): TrafficOverallBucket => ({
  bucket: START + minute * 60_000,
  requests: 60,
  errors: 0,
  avgLatencyMs: 100,
  maxLatencyMs: 200,
  p50LatencyMs: 90,
  p95LatencyMs: 180,
  p99LatencyMs: 195,
  avgTtftMs: 50,
  p50TtftMs: 45,
  p95TtftMs: 70,
  p99TtftMs: 80,
  coldStarts: 0,
  promptTokens: 10,
  completionTokens: 20,
  ...fields,
});

const row = (
  minute: number,
  model: string,
  fields: Partial<TrafficBucket> = {},
): TrafficBucket => ({ ...overallRow(minute), model, ...fields });

const answer: TrafficAnswer = {
  since: new Date(START).toISOString(),
  bucket_s: 60,
  buckets: [
    row(0, "a", { requests: 60, avgLatencyMs: 100, p50LatencyMs: 100, errors: 6, coldStarts: 1 }),
    row(0, "b", {
      requests: 120,
      avgLatencyMs: 400,
      maxLatencyMs: 900,
      p50LatencyMs: 400,
      p95LatencyMs: 850,
      p99LatencyMs: 900,
      avgTtftMs: null,
      p50TtftMs: null,
      p95TtftMs: null,
      p99TtftMs: null,
    }),
    row(2, "a", { requests: 30, avgLatencyMs: 300, p50LatencyMs: 290 }),
  ],
  // What the database computed over both models' requests together.
  overall: [
    overallRow(0, {
      requests: 180,
      errors: 6,
      avgLatencyMs: 300,
      maxLatencyMs: 900,
      p50LatencyMs: 350,
      p95LatencyMs: 820,
      p99LatencyMs: 890,
      coldStarts: 1,
      promptTokens: 20,
      completionTokens: 40,
    }),
    overallRow(2, { requests: 30, avgLatencyMs: 300, p50LatencyMs: 290 }),
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

  it("takes every model's percentiles from the overall rows, with gaps where nothing ran", () => {
    const series = trafficSeries(answer, null, NOW);
    // Not any mix of model a's 100 and model b's 400: the database's own p50 over both.
    expect(series.p50LatencyMs).toEqual([350, null, 290, null]);
    expect(series.p95LatencyMs).toEqual([820, null, 180, null]);
    expect(series.p99LatencyMs).toEqual([890, null, 195, null]);
    expect(series.p50TtftMs).toEqual([45, null, 45, null]);
    expect(series.p95TtftMs).toEqual([70, null, 70, null]);
    expect(series.p99TtftMs).toEqual([80, null, 80, null]);
    expect(series.errorPct).toEqual([(6 / 180) * 100, null, 0, null]);
    expect(series.coldStarts).toEqual([1, 0, 0, 0]);
  });

  it("narrows percentiles and errors to one model, but not the request rates", () => {
    const b = trafficSeries(answer, "b", NOW);
    expect(b.p50LatencyMs).toEqual([400, null, null, null]);
    expect(b.p95LatencyMs).toEqual([850, null, null, null]);
    expect(b.p99LatencyMs).toEqual([900, null, null, null]);
    // Model b reported no time to first token.
    expect(b.p50TtftMs).toEqual([null, null, null, null]);
    expect(b.errorPct).toEqual([0, null, null, null]);
    expect(b.total).toEqual([3, 0, 0.5, 0]);
    const a = trafficSeries(answer, "a", NOW);
    expect(a.p50LatencyMs).toEqual([100, null, 290, null]);
    expect(a.errorPct).toEqual([10, null, 0, null]);
    expect(a.coldStarts).toEqual([1, 0, 0, 0]);
  });

  it("leaves out rows outside the window", () => {
    const early = { ...answer, overall: [overallRow(-5), ...answer.overall] };
    expect(trafficSeries(early, null, NOW).p50LatencyMs).toEqual([350, null, 290, null]);
  });
});

describe("trafficSummaries", () => {
  it("sums per model, busiest first, then all models from the overall rows", () => {
    const summaries = trafficSummaries(answer, START + 100_000);
    expect(summaries.map((s) => [s.model, s.requests, s.errors, s.avgLatencyMs])).toEqual([
      ["b", 120, 0, 400],
      ["a", 90, 6, (60 * 100 + 30 * 300) / 90],
      [null, 210, 6, (180 * 300 + 30 * 300) / 210],
    ]);
    expect(summaries.at(-1)?.perSecond).toBeCloseTo(2.1);
    expect(summaries.at(-1)?.maxLatencyMs).toBe(900);
    expect(summaries.at(-1)?.coldStarts).toBe(1);
    expect(summaries.at(-1)?.promptTokens).toBe(30);
  });

  it("has only the total for an empty window", () => {
    const summaries = trafficSummaries({ ...answer, buckets: [], overall: [] }, NOW);
    expect(summaries).toEqual([
      expect.objectContaining({ model: null, requests: 0, avgLatencyMs: null, maxLatencyMs: null }),
    ]);
  });
});

describe("trafficModelLabel", () => {
  it.each([
    ["qwen", new Set<string>(), "qwen"],
    ["unknown", new Set<string>(), "unknown models (not in the catalogue)"],
    ["none", new Set<string>(), "no model named (rejected early)"],
    // A catalogue model really called so keeps its name.
    ["unknown", new Set(["unknown"]), "unknown"],
    ["none", new Set(["none"]), "none"],
  ])("%s (known: %o) → %s", (model, known, label) =>
    expect(trafficModelLabel(model, known)).toBe(label),
  );
});
