import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AdmissionQueue } from "./admission-queue.js";

const LIMITS = { maxQueued: 2, timeoutMs: 1000, retryAfterS: 2 };

/** A waiting request: its settled state is readable without awaiting it. */
const waiting = (promise: Promise<void>) => {
  const state: { outcome: "waiting" | "woken" | "rejected"; error: unknown } = {
    outcome: "waiting",
    error: undefined,
  };
  promise.then(
    () => {
      state.outcome = "woken";
    },
    (error: unknown) => {
      state.outcome = "rejected";
      state.error = error;
    },
  );
  return state;
};

const flush = async () => {
  await Promise.resolve();
  await Promise.resolve();
};

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});

afterEach(() => {
  vi.useRealTimers();
});

describe("AdmissionQueue", () => {
  const signal = () => new AbortController().signal;

  it("wakes the waiter with the lowest ticket first, a returning one at its old place", async () => {
    const queue = new AdmissionQueue(LIMITS);
    const first = queue.ticket();
    const second = queue.ticket();
    const deadlineMs = queue.deadline(0);
    // The second arrives first; the first comes back after a wake that did not get it a slot.
    const b = waiting(
      queue.wait("m", signal(), { ticket: second, deadlineMs, nowMs: 0, returning: false }),
    );
    const a = waiting(
      queue.wait("m", signal(), { ticket: first, deadlineMs, nowMs: 0, returning: true }),
    );
    expect(queue.depth("m")).toBe(2);
    queue.wakeOne("m");
    await flush();
    expect([a.outcome, b.outcome]).toEqual(["woken", "waiting"]);
    queue.wakeOne("m");
    await flush();
    expect(b.outcome).toBe("woken");
    expect(queue.depth("m")).toBe(0);
    expect(queue.depths().size).toBe(0);
  });

  it("refuses a new arrival when the line is full, never a returning one", async () => {
    const queue = new AdmissionQueue(LIMITS);
    const deadlineMs = queue.deadline(0);
    const options = (returning: boolean) => ({
      ticket: queue.ticket(),
      deadlineMs,
      nowMs: 0,
      returning,
    });
    queue.wait("m", signal(), options(false)).catch(() => {});
    queue.wait("m", signal(), options(false)).catch(() => {});
    await expect(queue.wait("m", signal(), options(false))).rejects.toMatchObject({
      code: "overloaded",
      retryAfterS: 2,
    });
    const back = waiting(queue.wait("m", signal(), options(true)));
    expect(queue.depth("m")).toBe(3);
    // Other models have lines of their own.
    const other = waiting(queue.wait("other", signal(), options(false)));
    expect(queue.depths()).toEqual(
      new Map([
        ["m", 3],
        ["other", 1],
      ]),
    );
    queue.wakeEveryone();
    await flush();
    expect([back.outcome, other.outcome]).toEqual(["woken", "woken"]);
    expect(queue.depths().size).toBe(0);
  });

  it("times a waiter out at its deadline, not before, and it leaves the line", async () => {
    const queue = new AdmissionQueue(LIMITS);
    const deadlineMs = queue.deadline(0);
    expect(deadlineMs).toBe(1000);
    // A returning request keeps its first deadline: 400 ms of it were spent already.
    const late = waiting(
      queue.wait("m", signal(), {
        ticket: queue.ticket(),
        deadlineMs,
        nowMs: 400,
        returning: true,
      }),
    );
    await vi.advanceTimersByTimeAsync(599);
    expect(late.outcome).toBe("waiting");
    await vi.advanceTimersByTimeAsync(1);
    expect(late.outcome).toBe("rejected");
    expect(late.error).toMatchObject({ code: "queue_timeout", retryAfterS: 2 });
    expect(queue.depth("m")).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("lets a client that goes away leave with the signal's reason, and clears its timer", async () => {
    const queue = new AdmissionQueue(LIMITS);
    const controller = new AbortController();
    const gone = new Error("client went away");
    const w = waiting(
      queue.wait("m", controller.signal, {
        ticket: queue.ticket(),
        deadlineMs: queue.deadline(0),
        nowMs: 0,
        returning: false,
      }),
    );
    controller.abort(gone);
    await flush();
    expect(w).toEqual({ outcome: "rejected", error: gone });
    expect(queue.depth("m")).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    // Already gone before it would wait: refused at once, nothing queued.
    await expect(
      queue.wait("m", controller.signal, {
        ticket: queue.ticket(),
        deadlineMs: 1000,
        nowMs: 0,
        returning: false,
      }),
    ).rejects.toBe(gone);
    expect(queue.depth("m")).toBe(0);
  });

  it("wakes everyone waiting for a model at once", async () => {
    const queue = new AdmissionQueue(LIMITS);
    const deadlineMs = queue.deadline(0);
    const all = [0, 1].map(() =>
      waiting(
        queue.wait("m", signal(), {
          ticket: queue.ticket(),
          deadlineMs,
          nowMs: 0,
          returning: false,
        }),
      ),
    );
    queue.wakeAll("m");
    queue.wakeOne("nobody");
    await flush();
    expect(all.map((w) => w.outcome)).toEqual(["woken", "woken"]);
  });
});
