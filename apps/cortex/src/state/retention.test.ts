import { afterEach, describe, expect, it } from "vitest";
import { type CortexState, openState } from "./database.js";
import { RequestLog } from "./request-log.js";
import { pruneRequestLog, RequestLogRetention } from "./retention.js";
import { requestLog } from "./schema.js";

const DAY = 86_400_000;
const NOW = 1_767_225_600_000;

let state: CortexState | undefined;
afterEach(() => {
  state?.close();
  state = undefined;
});

/** A state holding one request per `ages` entry, that many days before NOW. */
const withRequests = (ages: readonly number[]): CortexState => {
  state = openState(":memory:");
  const log = new RequestLog(state.db);
  ages.forEach((age, i) => {
    log.record({
      at: NOW - age * DAY,
      requestId: `r-${i}`,
      model: "m",
      status: 200,
      latencyMs: 1,
      stream: false,
      coldStart: false,
    });
  });
  log.close();
  return state;
};

const agesLeft = (opened: CortexState): number[] =>
  opened.db
    .select({ at: requestLog.at })
    .from(requestLog)
    .all()
    .map((row) => (NOW - row.at) / DAY)
    .sort((a, b) => a - b);

describe("pruneRequestLog", () => {
  it("deletes the oldest rows before the cut, at most `limit` of them", () => {
    const opened = withRequests([1, 40, 31, 35, 29, 50]);
    expect(pruneRequestLog(opened.db, NOW - 30 * DAY, 2)).toBe(2);
    expect(agesLeft(opened)).toEqual([1, 29, 31, 35]);
    expect(pruneRequestLog(opened.db, NOW - 30 * DAY, 10)).toBe(2);
    expect(agesLeft(opened)).toEqual([1, 29]);
    expect(pruneRequestLog(opened.db, NOW - 30 * DAY, 10)).toBe(0);
  });
});

describe("RequestLogRetention", () => {
  it("prunes everything past the window in batches", async () => {
    const ages = Array.from({ length: 25 }, (_, i) => i * 2); // 0, 2, …, 48 days
    const opened = withRequests(ages);
    const retention = new RequestLogRetention(opened.db, {
      retentionDays: 30,
      batch: 3,
      now: () => NOW,
    });
    expect(await retention.prune()).toBe(ages.filter((age) => age > 30).length);
    expect(agesLeft(opened)).toEqual(ages.filter((age) => age <= 30));
    await retention.stop();
  });

  it("keeps everything with a retention of 0 days", async () => {
    const opened = withRequests([1, 400]);
    const retention = new RequestLogRetention(opened.db, { retentionDays: 0, now: () => NOW });
    retention.start();
    expect(await retention.prune()).toBe(0);
    expect(agesLeft(opened)).toEqual([1, 400]);
    await retention.stop();
  });

  it("runs one pass at a time and prunes once started", async () => {
    const opened = withRequests([1, 40, 41]);
    const retention = new RequestLogRetention(opened.db, { retentionDays: 30, now: () => NOW });
    expect(retention.prune()).toBe(retention.prune());
    await retention.prune();
    expect(agesLeft(opened)).toEqual([1]);
    await retention.stop();
  });

  it("logs a failed pass instead of throwing (the next one tries again)", async () => {
    const opened = withRequests([40]);
    const warned: string[] = [];
    const retention = new RequestLogRetention(opened.db, {
      retentionDays: 30,
      now: () => NOW,
      log: {
        debug: () => {},
        info: () => {},
        warn: (_o, message) => warned.push(message),
        error: () => {},
      },
    });
    opened.close();
    expect(await retention.prune()).toBe(0);
    expect(warned).toEqual(["request log pruning failed"]);
  });
});
