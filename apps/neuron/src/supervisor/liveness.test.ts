import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { systemTimers } from "../timers.js";
import { LivenessProbe, type LivenessSettings, probeTimeoutMs } from "./liveness.js";

// The probe loop alone, with a scripted probe and fake timers: when it probes, how it counts,
// what resets the count, and when it gives up, exact to the millisecond. Nothing sleeps.

const URL_ = "http://127.0.0.1:40000/health";

/**
 * What the harness does with each probe: answers 2xx, answers something else, hangs until the
 * probe's timeout aborts it, or hangs and ignores the abort too.
 */
type Answer = "ok" | "fail" | "hang" | "deaf";

/** Answers of the next probes, in order; the last one repeats. */
let script: Answer[];
let calls: { url: string; signal: AbortSignal }[];
let running: number;
let mostAtOnce: number;
let trafficAtMs: number | null;
let reasons: string[];
let liveness: LivenessProbe;

const probe = (url: string, signal: AbortSignal): Promise<boolean> => {
  calls.push({ url, signal });
  const answer = script.length > 1 ? (script.shift() as Answer) : (script[0] ?? "ok");
  running += 1;
  mostAtOnce = Math.max(mostAtOnce, running);
  const done = <T>(value: T): T => {
    running -= 1;
    return value;
  };
  if (answer === "ok") return Promise.resolve(done(true));
  if (answer === "fail") return Promise.resolve(done(false));
  if (answer === "deaf") return new Promise<boolean>(() => {});
  return new Promise<boolean>((_, reject) => {
    signal.addEventListener("abort", () => reject(done(signal.reason)), { once: true });
  });
};

const watch = (settings: Partial<LivenessSettings> = {}): LivenessProbe => {
  const probeLoop = new LivenessProbe(
    {
      url: URL_,
      lastTrafficMs: () => trafficAtMs,
      onUnresponsive: (reason) => reasons.push(reason),
    },
    { probe, timers: systemTimers, now: () => Date.now() },
    { healthIntervalMs: 1000, unhealthyAfterFailures: 3, ...settings },
  );
  probeLoop.start();
  return probeLoop;
};

/** Moves the fake clock by `ms`, running every timer and promise due on the way. */
const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);

beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse("2025-01-01T00:00:00Z") });
  script = ["ok"];
  calls = [];
  running = 0;
  mostAtOnce = 0;
  trafficAtMs = null;
  reasons = [];
});

afterEach(() => {
  liveness?.stop();
  vi.useRealTimers();
});

describe("probeTimeoutMs", () => {
  it.each([
    [5000, 2000],
    [2000, 2000],
    [1000, 1000],
    [100, 100],
  ])("an interval of %i ms gives probes %i ms", (interval, timeout) => {
    expect(probeTimeoutMs(interval)).toBe(timeout);
  });
});

describe("LivenessProbe", () => {
  it("probes the ready path once every interval, the first one interval after ready", async () => {
    liveness = watch();
    await advance(999);
    expect(calls).toHaveLength(0);
    await advance(1);
    expect(calls.map((call) => call.url)).toEqual([URL_]);
    await advance(9000);
    expect(calls).toHaveLength(10);
    expect(mostAtOnce).toBe(1);
    expect(reasons).toEqual([]);
    expect(liveness.failures).toBe(0);
  });

  it("gives up after unhealthy_after_failures failed probes in a row, once, and probes no more", async () => {
    script = ["fail"];
    liveness = watch();
    await advance(2000);
    expect(liveness.failures).toBe(2);
    expect(reasons).toEqual([]);
    await advance(1000);
    expect(reasons).toEqual([
      "harness stopped answering /health: 3 probes in a row failed (every 1000 ms; the last: no 2xx answer)",
    ]);
    await advance(60_000);
    expect(calls).toHaveLength(3);
    expect(reasons).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("counts a probe that answers nothing within min(2000, interval) as failed, and aborts it", async () => {
    script = ["hang"];
    liveness = watch({ healthIntervalMs: 5000 });
    await advance(5000);
    expect(calls).toHaveLength(1);
    await advance(1999);
    expect(liveness.failures).toBe(0);
    expect(calls[0]?.signal.aborted).toBe(false);
    await advance(1);
    expect(liveness.failures).toBe(1);
    expect(calls[0]?.signal.aborted).toBe(true);
    // The next probe starts an interval after the last one started, not after it timed out.
    await advance(2999);
    expect(calls).toHaveLength(1);
    await advance(1);
    expect(calls).toHaveLength(2);
    // Three failures: 3 intervals and one timeout after ready.
    await advance(5000 + 1999);
    expect(reasons).toEqual([]);
    await advance(1);
    expect(reasons).toEqual([
      expect.stringMatching(
        /3 probes in a row failed \(every 5000 ms; the last: no answer within 2000 ms\)$/,
      ),
    ]);
    expect(mostAtOnce).toBe(1);
  });

  it("never runs two probes at once, even beside one that ignores its abort", async () => {
    script = ["deaf"];
    liveness = watch({ healthIntervalMs: 1000, unhealthyAfterFailures: 3 });
    await advance(10_000);
    expect(calls).toHaveLength(1);
    expect(mostAtOnce).toBe(1);
    expect(reasons).toEqual([
      expect.stringMatching(/3 probes in a row failed .*the previous probe has still not ended\)$/),
    ]);
  });

  it("a successful probe resets the count", async () => {
    script = ["fail", "fail", "ok", "fail", "fail", "ok", "fail", "fail", "fail"];
    liveness = watch();
    await advance(2000);
    expect(liveness.failures).toBe(2);
    await advance(1000);
    expect(liveness.failures).toBe(0);
    await advance(3000);
    expect(liveness.failures).toBe(0);
    expect(reasons).toEqual([]);
    await advance(2000);
    expect(liveness.failures).toBe(2);
    expect(reasons).toEqual([]);
    await advance(1000);
    expect(reasons).toHaveLength(1);
    expect(calls).toHaveLength(9);
  });

  it("counts a harness that streamed to a client within the interval as alive, without a probe", async () => {
    script = ["hang"];
    liveness = watch();
    // Bytes flow now and then while the harness would not answer its health path.
    for (let second = 0; second < 10; second += 1) {
      await advance(500);
      trafficAtMs = Date.now();
      await advance(500);
    }
    expect(calls).toHaveLength(0);
    expect(reasons).toEqual([]);
    // The stream ended: from the next tick on, probes again (the last bytes were 1.5 s ago).
    await advance(1000);
    expect(calls).toHaveLength(1);
    // A probe times out after 1000 ms and the next starts at once: three of them.
    await advance(2999);
    expect(reasons).toEqual([]);
    await advance(1);
    expect(reasons).toHaveLength(1);
  });

  it("streaming resets the count of failures, as a good probe does", async () => {
    script = ["fail"];
    liveness = watch();
    await advance(2000);
    expect(liveness.failures).toBe(2);
    await advance(500);
    trafficAtMs = Date.now();
    await advance(500);
    expect(liveness.failures).toBe(0);
    await advance(2000);
    expect(liveness.failures).toBe(2);
    expect(reasons).toEqual([]);
  });

  it("traffic older than the interval does not count", async () => {
    script = ["fail"];
    trafficAtMs = Date.now();
    liveness = watch();
    await advance(3000);
    expect(calls).toHaveLength(3);
    expect(reasons).toHaveLength(1);
  });

  it("stops: the probe under way is aborted, its answer ignored, and nothing more runs", async () => {
    script = ["hang"];
    liveness = watch({ unhealthyAfterFailures: 1 });
    await advance(1000);
    expect(calls).toHaveLength(1);
    liveness.stop();
    expect(calls[0]?.signal.aborted).toBe(true);
    await advance(60_000);
    expect(calls).toHaveLength(1);
    expect(reasons).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("an interval of 0 never probes", async () => {
    script = ["fail"];
    liveness = watch({ healthIntervalMs: 0 });
    await advance(60_000);
    expect(calls).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
