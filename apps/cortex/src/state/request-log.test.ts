import { count } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type CortexState, openState } from "./database.js";
import { RequestLog, type RequestLogEntry } from "./request-log.js";
import { requestLog } from "./schema.js";

const entry = (i: number, overrides: Partial<RequestLogEntry> = {}): RequestLogEntry => ({
  at: 1_700_000_000_000 + i,
  requestId: `req-${i}`,
  model: "llama",
  node: "gpu-1",
  status: 200,
  latencyMs: 12.5,
  ttftMs: 3.25,
  promptTokens: 10,
  completionTokens: 20,
  stream: true,
  coldStart: false,
  errorCode: null,
  ...overrides,
});

const rowCount = (state: CortexState): number =>
  state.db.select({ n: count() }).from(requestLog).get()?.n ?? 0;

const nextTick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("RequestLog", () => {
  let state: CortexState | undefined;
  let log: RequestLog | undefined;

  afterEach(() => {
    log?.close();
    state?.close();
    log = undefined;
    state = undefined;
    vi.useRealTimers();
  });

  it("record never writes; flush writes every field with its column mapping", () => {
    state = openState(":memory:");
    log = new RequestLog(state.db);
    log.record(entry(1));
    log.record(
      entry(2, {
        node: undefined,
        ttftMs: undefined,
        stream: false,
        coldStart: true,
        status: 503,
        errorCode: "no_capacity",
      }),
    );
    expect(rowCount(state)).toBe(0);
    expect(log.pending).toBe(2);

    expect(log.flush()).toBe(2);
    expect(log.pending).toBe(0);
    expect(log.written).toBe(2);
    const rows = state.sqlite.prepare("SELECT * FROM request_log ORDER BY id").all();
    expect(rows).toEqual([
      {
        id: 1,
        at: 1_700_000_000_001,
        request_id: "req-1",
        model: "llama",
        node: "gpu-1",
        status: 200,
        latency_ms: 12.5,
        ttft_ms: 3.25,
        prompt_tokens: 10,
        completion_tokens: 20,
        stream: 1,
        cold_start: 0,
        error_code: null,
      },
      expect.objectContaining({
        id: 2,
        node: null,
        ttft_ms: null,
        stream: 0,
        cold_start: 1,
        status: 503,
        error_code: "no_capacity",
      }),
    ]);
  });

  it("schedules a flush, off the caller's path, once 500 are pending", async () => {
    state = openState(":memory:");
    log = new RequestLog(state.db, { flushIntervalMs: 60_000 });
    for (let i = 0; i < 499; i++) log.record(entry(i));
    await nextTick();
    expect(rowCount(state)).toBe(0);

    log.record(entry(499));
    expect(rowCount(state)).toBe(0); // not inline: the request path never waits for SQLite
    await nextTick();
    expect(rowCount(state)).toBe(500);
    expect(log.pending).toBe(0);
  });

  it("flushes on the timer", () => {
    vi.useFakeTimers();
    state = openState(":memory:");
    log = new RequestLog(state.db, { flushIntervalMs: 1_000 });
    log.record(entry(1));
    log.record(entry(2));
    vi.advanceTimersByTime(999);
    expect(rowCount(state)).toBe(0);
    vi.advanceTimersByTime(1);
    expect(rowCount(state)).toBe(2);
    log.record(entry(3));
    vi.advanceTimersByTime(1_000);
    expect(rowCount(state)).toBe(3);
  });

  it("bounds the buffer: the oldest go and are counted, the newest are written", () => {
    state = openState(":memory:");
    log = new RequestLog(state.db, { maxPending: 3_000, batchSize: 1_000_000 });
    for (let i = 0; i < 10_000; i++) log.record(entry(i));
    expect(log.pending).toBe(3_000);
    expect(log.dropped).toBe(7_000);
    expect(log.flush()).toBe(3_000);
    const ids = state.sqlite
      .prepare("SELECT min(request_id) AS first, max(at) AS last FROM request_log")
      .get() as { first: string; last: number };
    expect(ids).toEqual({ first: "req-7000", last: 1_700_000_000_000 + 9_999 });
  });

  it("skips a row the database refuses and keeps the rest of the batch", () => {
    state = openState(":memory:");
    log = new RequestLog(state.db);
    log.record(entry(1));
    log.record(entry(2, { latencyMs: Number.NaN })); // NaN binds as NULL: NOT NULL refuses it
    log.record(entry(3));
    expect(log.flush()).toBe(2);
    expect(log.rejected).toBe(1);
    expect(rowCount(state)).toBe(2);
  });

  it("drops and counts a batch when the database is gone, without throwing", () => {
    state = openState(":memory:");
    log = new RequestLog(state.db);
    log.record(entry(1));
    state.close();
    expect(() => log?.flush()).not.toThrow();
    expect(log.dropped).toBe(1);
    expect(log.pending).toBe(0);
  });

  it("close flushes; later records are dropped and counted", () => {
    state = openState(":memory:");
    log = new RequestLog(state.db);
    log.record(entry(1));
    log.close();
    expect(rowCount(state)).toBe(1);
    log.record(entry(2));
    expect(log.dropped).toBe(1);
    expect(log.flush()).toBe(0);
  });
});
