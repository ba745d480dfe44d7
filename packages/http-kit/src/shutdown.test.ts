import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { silentLog } from "./api-error.js";
import { type ShutdownOptions, shutdownOnSignal, timerMs } from "./shutdown.js";

/** A stop the test ends by hand, and every effect recorded. */
const harness = (overrides: Partial<ShutdownOptions> = {}) => {
  let endStop: () => void = () => {};
  let failStop: (error: Error) => void = () => {};
  const stop = vi.fn(
    () =>
      new Promise<void>((resolve, reject) => {
        endStop = resolve;
        failStop = reject;
      }),
  );
  const cut = vi.fn();
  const exit = vi.fn();
  const onSignal = shutdownOnSignal({
    stop,
    cut,
    deadlineMs: 1000,
    flush: () => Promise.resolve(),
    flushMs: 100,
    exit,
    log: silentLog,
    ...overrides,
  });
  return { onSignal, stop, cut, exit, end: () => endStop(), fail: (e: Error) => failStop(e) };
};

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("shutdownOnSignal", () => {
  it("stops once and exits 0 when the stop ends before the deadline", async () => {
    const h = harness();
    h.onSignal("SIGTERM");
    await vi.advanceTimersByTimeAsync(500);
    expect(h.stop).toHaveBeenCalledTimes(1);
    expect(h.exit).not.toHaveBeenCalled();
    h.end();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.exit).toHaveBeenCalledWith(0);
    // The deadline was disarmed: nothing more happens.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(h.exit).toHaveBeenCalledTimes(1);
  });

  it("exits 1 at the deadline when the stop never ends", async () => {
    const h = harness();
    h.onSignal("SIGTERM");
    await vi.advanceTimersByTimeAsync(999);
    expect(h.exit).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(h.exit).toHaveBeenCalledWith(1);
    h.end();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.exit).toHaveBeenCalledTimes(1);
  });

  it("exits 1 when the stop fails", async () => {
    const h = harness();
    h.onSignal("SIGINT");
    await vi.advanceTimersByTimeAsync(0);
    h.fail(new Error("disk gone"));
    await vi.advanceTimersByTimeAsync(0);
    expect(h.exit).toHaveBeenCalledWith(1);
  });

  it("does not wait more than flushMs for a log output that never drains", async () => {
    const h = harness({ flush: () => new Promise(() => {}) });
    h.onSignal("SIGTERM");
    await vi.advanceTimersByTimeAsync(0);
    h.end();
    await vi.advanceTimersByTimeAsync(99);
    expect(h.exit).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(h.exit).toHaveBeenCalledWith(0);
  });

  it("a second signal cuts the requests in flight; later ones change nothing", async () => {
    const h = harness();
    h.onSignal("SIGTERM");
    expect(h.cut).not.toHaveBeenCalled();
    h.onSignal("SIGINT");
    expect(h.cut).toHaveBeenCalledTimes(1);
    h.onSignal("SIGTERM");
    await vi.advanceTimersByTimeAsync(0);
    expect(h.cut).toHaveBeenCalledTimes(1);
    expect(h.stop).toHaveBeenCalledTimes(1);
    // The deadline still holds.
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.exit).toHaveBeenCalledWith(1);
  });

  it("a stop that throws at once is a failed stop, not a crash", async () => {
    const h = harness({
      stop: () => {
        throw new Error("boom");
      },
    });
    expect(() => h.onSignal("SIGTERM")).not.toThrow();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.exit).toHaveBeenCalledWith(1);
  });

  it("the deadline timer does not keep the process alive", () => {
    const h = harness();
    const spy = vi.spyOn(globalThis, "setTimeout");
    h.onSignal("SIGTERM");
    const timer = spy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
  });
});

describe("timerMs", () => {
  it.each([
    [500, 500],
    [-1, 0],
    [2_147_483_647 + 5000, 2_147_483_647],
  ])("%d → %d", (ms, expected) => {
    expect(timerMs(ms)).toBe(expected);
  });
});
