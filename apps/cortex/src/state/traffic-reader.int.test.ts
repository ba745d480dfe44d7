import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type CortexState, openState } from "./database.js";
import { trafficSummary } from "./queries.js";
import { RequestLog } from "./request-log.js";
import { TrafficReader } from "./traffic-reader.js";

// The reader answers from its own read-only connection in a worker thread: the same numbers as
// trafficSummary on cortex's connection, without running the ranking on the event loop.

const T0 = 1_767_225_600_000;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const stateWithTraffic = async (): Promise<CortexState> => {
  const dir = await mkdtemp(join(tmpdir(), "cortex-traffic-"));
  const state = openState(dir);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  cleanups.push(() => state.close());
  const log = new RequestLog(state.db);
  for (let i = 0; i < 300; i += 1) {
    log.record({
      at: T0 + i * 1000,
      requestId: `r-${i}`,
      model: i % 3 === 0 ? "small" : "large",
      node: "gpu-1",
      status: i % 17 === 0 ? 503 : 200,
      latencyMs: (i * 37) % 101,
      ttftMs: i % 2 === 0 ? (i * 13) % 53 : null,
      promptTokens: 3,
      completionTokens: 5,
      stream: i % 2 === 0,
      coldStart: i === 0,
    });
  }
  log.close();
  return state;
};

const readerOf = (state: CortexState) => {
  const reader = new TrafficReader(state);
  cleanups.unshift(() => reader.close());
  return reader;
};

describe("TrafficReader", () => {
  it("answers what trafficSummary answers, from its own connection", async () => {
    const state = await stateWithTraffic();
    const reader = readerOf(state);
    for (const query of [
      { sinceMs: T0, bucketMs: 60_000 },
      { sinceMs: T0 + 100_000, bucketMs: 30_000 },
      { sinceMs: T0, bucketMs: 60_000, model: "small" },
    ]) {
      const expected = trafficSummary(state.db, query);
      expect(expected.buckets.length).toBeGreaterThan(0);
      expect(await reader.summary(query)).toEqual(expected);
    }
  });

  it("sees rows written after it started", async () => {
    const state = await stateWithTraffic();
    const reader = readerOf(state);
    const query = { sinceMs: T0, bucketMs: 3_600_000 };
    const before = await reader.summary(query);
    const log = new RequestLog(state.db);
    log.record({
      at: T0 + 1,
      requestId: "late",
      model: "small",
      status: 200,
      latencyMs: 1,
      stream: false,
      coldStart: false,
    });
    log.close();
    const after = await reader.summary(query);
    expect(after.overall[0]?.requests).toBe((before.overall[0]?.requests ?? 0) + 1);
  });

  it("shares one answer between identical questions asked together", async () => {
    const state = await stateWithTraffic();
    const reader = readerOf(state);
    const query = { sinceMs: T0, bucketMs: 60_000 };
    const first = reader.summary(query);
    expect(reader.summary({ ...query })).toBe(first);
    await first;
    // Once answered, the next question is asked afresh.
    const next = reader.summary(query);
    expect(next).not.toBe(first);
    expect(await next).toEqual(await first);
  });

  it("rejects a question it cannot ask, and keeps answering the next ones", async () => {
    const state = await stateWithTraffic();
    const reader = readerOf(state);
    await expect(reader.summary({ sinceMs: T0, bucketMs: 0 })).rejects.toThrow(RangeError);
    expect(
      (await reader.summary({ sinceMs: T0, bucketMs: 60_000 })).buckets.length,
    ).toBeGreaterThan(0);
  });

  it("refuses questions once closed", async () => {
    const state = await stateWithTraffic();
    const reader = readerOf(state);
    await reader.summary({ sinceMs: T0, bucketMs: 60_000 });
    await reader.close();
    await expect(reader.summary({ sinceMs: T0, bucketMs: 60_000 })).rejects.toThrow("closed");
  });

  it("reads an in-memory database in place", async () => {
    const state = openState(":memory:");
    cleanups.push(() => state.close());
    const reader = readerOf(state);
    expect(await reader.summary({ sinceMs: T0, bucketMs: 60_000 })).toEqual({
      buckets: [],
      overall: [],
    });
  });
});
