import { describe, expect, it } from "vitest";
import { SlotPool } from "./slots.js";

describe("SlotPool", () => {
  it("hands out every slot, then makes callers wait in order", async () => {
    const pool = new SlotPool(["a", "b"]);
    const first = await pool.acquire();
    const second = await pool.acquire();
    expect(new Set([first.slot, second.slot])).toEqual(new Set(["a", "b"]));
    const order: string[] = [];
    const third = pool.acquire().then((lease) => {
      order.push("third");
      return lease;
    });
    const fourth = pool.acquire().then((lease) => {
      order.push("fourth");
      return lease;
    });
    expect(pool.waiting).toBe(2);
    first.release();
    (await third).release();
    second.release();
    await fourth;
    expect(order).toEqual(["third", "fourth"]);
  });

  it("gives a slot back once, however often release is called", async () => {
    const pool = new SlotPool([1]);
    const lease = await pool.acquire();
    lease.release();
    lease.release();
    expect(pool.busy).toBe(0);
    await pool.acquire();
    expect(pool.busy).toBe(1);
  });

  it("drops an aborted waiter without taking a slot", async () => {
    const pool = new SlotPool([1]);
    const held = await pool.acquire();
    const controller = new AbortController();
    const waiting = pool.acquire(controller.signal);
    controller.abort(new Error("client left"));
    await expect(waiting).rejects.toThrow("client left");
    expect(pool.waiting).toBe(0);
    held.release();
    expect(pool.busy).toBe(0);
  });

  it("refuses at once when the signal is already aborted", async () => {
    const pool = new SlotPool([1]);
    await expect(pool.acquire(AbortSignal.abort(new Error("gone")))).rejects.toThrow("gone");
    expect(pool.busy).toBe(0);
  });

  it("lets a caller choose among the free slots, and sees only the free ones", async () => {
    const pool = new SlotPool(["a", "b", "c"]);
    const seen: string[][] = [];
    const b = await pool.acquire(undefined, (free) => {
      seen.push([...free]);
      return free.indexOf("b");
    });
    expect(b.slot).toBe("b");
    const a = await pool.acquire(undefined, (free) => {
      seen.push([...free]);
      return 0;
    });
    expect(a.slot).toBe("a");
    expect(seen).toEqual([
      ["a", "b", "c"],
      ["a", "c"],
    ]);
    b.release();
    a.release();
    expect(pool.busy).toBe(0);
  });

  it("refuses a choice outside the free slots without taking one", async () => {
    const pool = new SlotPool(["a"]);
    await expect(pool.acquire(undefined, () => 3)).rejects.toThrow(RangeError);
    expect(pool.busy).toBe(0);
  });

  it("hands a waiter the slot that frees, without asking its chooser", async () => {
    const pool = new SlotPool(["a"]);
    const held = await pool.acquire();
    let asked = 0;
    const waiting = pool.acquire(undefined, () => {
      asked += 1;
      return 0;
    });
    held.release();
    expect((await waiting).slot).toBe("a");
    expect(asked).toBe(0);
  });
});
