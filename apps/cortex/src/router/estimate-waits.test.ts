import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { EstimateWaits } from "./estimate-waits.js";

// Requests waiting for a model's GPU memory estimate: woken when its figure changes, refused
// past the line's bound, timed out at their deadline saying why the estimate is not in.

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

const options = (ticket: number, fields: { returning?: boolean; detail?: string | null } = {}) => ({
  ticket,
  deadlineMs: 5000,
  nowMs: 0,
  returning: fields.returning ?? false,
  detail: fields.detail ?? null,
});

describe("EstimateWaits", () => {
  it("wakes every request waiting for the model, and only for that model", async () => {
    const waits = new EstimateWaits({ maxQueued: 4, retryAfterS: 2 });
    const signal = new AbortController().signal;
    const woken: number[] = [];
    void waits.wait("m", signal, options(1)).then(() => woken.push(1));
    void waits.wait("m", signal, options(2)).then(() => woken.push(2));
    void waits.wait("other", signal, options(3)).then(() => woken.push(3));
    expect(waits.depths()).toEqual(
      new Map([
        ["m", 2],
        ["other", 1],
      ]),
    );
    waits.wake("m");
    await vi.advanceTimersByTimeAsync(0);
    expect(woken).toEqual([1, 2]);
    expect(waits.depths()).toEqual(new Map([["other", 1]]));
  });

  it("refuses a new arrival past the bound, but not one that waited before", async () => {
    const waits = new EstimateWaits({ maxQueued: 1, retryAfterS: 2 });
    const signal = new AbortController().signal;
    void waits.wait("m", signal, options(1)).catch(() => {});
    await expect(waits.wait("m", signal, options(2))).rejects.toMatchObject({
      code: "overloaded",
      retryAfterS: 2,
    });
    const returning = waits.wait("m", signal, options(0, { returning: true }));
    waits.wake("m");
    await expect(returning).resolves.toBeUndefined();
  });

  it("answers 503 at the deadline, naming the last attempt's error", async () => {
    const waits = new EstimateWaits({ maxQueued: 4, retryAfterS: 2 });
    const waiting = waits.wait(
      "m",
      new AbortController().signal,
      options(1, { detail: "connection refused" }),
    );
    const failed = expect(waiting).rejects.toMatchObject({
      code: "service_unavailable",
      message: expect.stringMatching(/still being estimated \(last attempt: connection refused\)/),
    });
    await vi.advanceTimersByTimeAsync(5000);
    await failed;
    expect(waits.depths().size).toBe(0);
  });

  it("leaves the line when the client goes away", async () => {
    const waits = new EstimateWaits({ maxQueued: 4, retryAfterS: 2 });
    const client = new AbortController();
    const waiting = waits.wait("m", client.signal, options(1));
    client.abort(new Error("gone"));
    await expect(waiting).rejects.toThrow("gone");
    expect(waits.depths().size).toBe(0);
  });
});
