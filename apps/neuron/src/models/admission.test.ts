import { afterEach, describe, expect, it, vi } from "vitest";
import { Admission, AdmissionError } from "./admission.js";

const gate = () => {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
};

describe("Admission", () => {
  it("runs up to the concurrency and queues the rest, counting both exactly", async () => {
    const admission = new Admission(2, { maxQueued: 5, queueTimeoutMs: 5000 });
    const gates = [gate(), gate(), gate()];
    const runs = gates.map((g, i) =>
      admission.run(async () => {
        await g.opened;
        return i;
      }),
    );
    await expect.poll(() => admission.running).toBe(2);
    expect(admission.queued).toBe(1);
    gates[0]?.open();
    await expect.poll(() => admission.queued).toBe(0);
    expect(admission.running).toBe(2);
    gates[1]?.open();
    gates[2]?.open();
    expect(await Promise.all(runs)).toEqual([0, 1, 2]);
    expect([admission.running, admission.queued]).toEqual([0, 0]);
  });

  it("refuses with overloaded when the queue is full", async () => {
    const admission = new Admission(1, { maxQueued: 1, queueTimeoutMs: 5000 });
    const g = gate();
    const first = admission.run(() => g.opened);
    const second = admission.run(() => Promise.resolve());
    await expect(admission.run(() => Promise.resolve())).rejects.toMatchObject({
      code: "overloaded",
    });
    g.open();
    await Promise.all([first, second]);
    expect([admission.running, admission.queued]).toEqual([0, 0]);
  });

  it("times a waiter out with queue_timeout and never runs its work", async () => {
    const admission = new Admission(1, { maxQueued: 4, queueTimeoutMs: 50 });
    const g = gate();
    const first = admission.run(() => g.opened);
    let ran = false;
    await expect(
      admission.run(async () => {
        ran = true;
      }),
    ).rejects.toBeInstanceOf(AdmissionError);
    expect(admission.queued).toBe(0);
    g.open();
    await first;
    expect(ran).toBe(false);
    expect([admission.running, admission.queued]).toEqual([0, 0]);
  });

  it("lets a waiter leave at once when its caller aborts", async () => {
    const admission = new Admission(1, { maxQueued: 4, queueTimeoutMs: 5000 });
    const g = gate();
    const first = admission.run(() => g.opened);
    const controller = new AbortController();
    const waiting = admission.run(() => Promise.resolve("never"), controller.signal);
    expect(admission.queued).toBe(1);
    controller.abort(new Error("client left"));
    await expect(waiting).rejects.toThrow("client left");
    expect(admission.queued).toBe(0);
    g.open();
    await first;
    expect([admission.running, admission.queued]).toEqual([0, 0]);
  });

  it("releases the slot when the work fails", async () => {
    const admission = new Admission(1, { maxQueued: 1, queueTimeoutMs: 5000 });
    await expect(admission.run(() => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await admission.run(() => Promise.resolve("next"))).toBe("next");
    expect([admission.running, admission.queued]).toEqual([0, 0]);
  });

  it("serves waiting callers first come, first served", async () => {
    const admission = new Admission(1, { maxQueued: 4, queueTimeoutMs: 5000 });
    const g = gate();
    const order: number[] = [];
    const first = admission.run(() => g.opened);
    const waiting = [1, 2, 3].map((n) =>
      admission.run(async () => {
        order.push(n);
      }),
    );
    await Promise.resolve();
    expect(order).toEqual([]);
    g.open();
    await Promise.all([first, ...waiting]);
    expect(order).toEqual([1, 2, 3]);
    expect([admission.running, admission.queued]).toEqual([0, 0]);
  });
});

describe("Admission paused (a drain before a swap)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("queues new callers even with a slot free, hands out no freed slot, and resumes in order", async () => {
    const admission = new Admission(2, { maxQueued: 5, queueTimeoutMs: 5000 });
    const g = gate();
    const order: string[] = [];
    const running = admission.run(async () => {
      order.push("running");
      await g.opened;
    });
    admission.pause();
    expect(admission.paused).toBe(true);
    // One slot is free, yet nobody new starts while paused.
    const later = ["first", "second"].map((name) =>
      admission.run(async () => {
        order.push(name);
      }),
    );
    expect([admission.running, admission.queued]).toEqual([1, 2]);
    g.open();
    await running;
    // The freed slot went to nobody: the drained model now has nothing running.
    expect([admission.running, admission.queued]).toEqual([0, 2]);
    expect(order).toEqual(["running"]);
    admission.resume();
    expect(admission.paused).toBe(false);
    await Promise.all(later);
    expect(order).toEqual(["running", "first", "second"]);
    expect([admission.running, admission.queued]).toEqual([0, 0]);
    // Unpaused, a caller with a free slot starts at once again.
    expect(await admission.run(async () => "now")).toBe("now");
  });

  it("lets callers holding a turn through while paused, oldest first, and no one after them", async () => {
    const admission = new Admission(1, { maxQueued: 5, queueTimeoutMs: 5000 });
    const g = gate();
    const order: string[] = [];
    const running = admission.run(() => g.opened);
    const served = ["turn 1", "turn 2"].map((name) =>
      admission.run(async () => {
        order.push(name);
      }),
    );
    // Queued for the swap that brought the model in: they hold a turn.
    admission.grantTurns();
    admission.pause();
    const late = admission.run(async () => {
      order.push("late");
    });
    g.open();
    await running;
    await Promise.all(served);
    expect(order).toEqual(["turn 1", "turn 2"]);
    expect([admission.running, admission.queued]).toEqual([0, 1]);
    admission.resume();
    await late;
    expect(order).toEqual(["turn 1", "turn 2", "late"]);
  });

  it("still refuses beyond maxQueued and times waiters out while paused", async () => {
    vi.useFakeTimers();
    const admission = new Admission(1, { maxQueued: 1, queueTimeoutMs: 1000 });
    admission.pause();
    let ran = false;
    const waiting = admission.run(async () => {
      ran = true;
    });
    await expect(admission.run(() => Promise.resolve())).rejects.toMatchObject({
      code: "overloaded",
    });
    const timedOut = expect(waiting).rejects.toMatchObject({ code: "queue_timeout" });
    await vi.advanceTimersByTimeAsync(1000);
    await timedOut;
    expect(ran).toBe(false);
    expect([admission.running, admission.queued]).toEqual([0, 0]);
  });

  it("resume with nobody waiting changes nothing", () => {
    const admission = new Admission(1, { maxQueued: 1, queueTimeoutMs: 1000 });
    admission.resume();
    expect([admission.paused, admission.running, admission.queued]).toEqual([false, 0, 0]);
  });
});
