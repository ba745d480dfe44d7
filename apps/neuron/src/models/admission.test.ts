import { describe, expect, it } from "vitest";
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
