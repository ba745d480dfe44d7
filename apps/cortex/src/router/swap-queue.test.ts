import type { FleetEvent } from "@cortex/protocol";
import type { ResidentWork } from "@cortex/routing";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CortexError } from "../errors.js";
import { SwapQueue } from "./swap-queue.js";

// The swap queue's glue around the pure scheduler, on fake timers: who is woken and when,
// which replicas drain, the bound's timer, refusals, and the guard against a swap loop.

const key = (node: string, model: string) => `${node}\u0000${model}`;

const setup = (options: { maxQueued?: number; maxWaitMs?: number } = {}) => {
  const work = new Map<string, ResidentWork>();
  const events: FleetEvent[] = [];
  let recheck: (node: string, model: string) => readonly string[] | null = (_node, model) =>
    model === "b" ? ["a"] : null;
  const queue = new SwapQueue({
    maxQueued: options.maxQueued ?? 10,
    maxWaitMs: options.maxWaitMs ?? 30_000,
    retryAfterS: 2,
    work: (_node, model) => work.get(model) ?? { running: 0, queued: 0 },
    recheck: (node, model) => recheck(node, model),
    emit: (event) => events.push(event),
    now: () => Date.now(),
  });
  const wait = (model: string, blockers: string[], ticket: number, returning = false) => {
    const signal = new AbortController();
    const promise = queue.wait("n", model, blockers, signal.signal, {
      ticket,
      sinceMs: Date.now(),
      deadlineMs: Date.now() + 60_000,
      returning,
    });
    return { promise, abort: () => signal.abort(new Error("client went away")) };
  };
  const setRecheck = (fn: typeof recheck) => {
    recheck = fn;
  };
  return { queue, work, events, wait, setRecheck };
};

/** Whether a promise has settled, without waiting for it. */
const settled = async (promise: Promise<unknown>) => {
  let done = false;
  promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await Promise.resolve();
  await Promise.resolve();
  return done;
};

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(1_000_000);
});
afterEach(() => vi.useRealTimers());

describe("SwapQueue", () => {
  it("holds requests while the blocker has work, then wakes every one of the model with its turn", async () => {
    const { queue, work, events, wait } = setup();
    work.set("a", { running: 2, queued: 0 });
    const first = wait("b", ["a"], 1);
    const second = wait("b", ["a"], 2);
    expect(await settled(first.promise)).toBe(false);
    expect(queue.depths().get("b")).toBe(2);
    expect(events.map((event) => event.type)).toEqual(["swap_queued"]);
    work.set("a", { running: 0, queued: 0 });
    queue.settled(false);
    await expect(first.promise).resolves.toEqual({ node: "n", waiting: 2, waitedMs: 0 });
    await expect(second.promise).resolves.toEqual({ node: "n", waiting: 2, waitedMs: 0 });
    // Announced by whoever starts the swap's load (the dispatcher), with its real evictions.
    expect(events.map((event) => event.type)).toEqual(["swap_queued"]);
    expect(queue.depths().size).toBe(0);
  });

  it("drains the blockers at the bound, and swaps once nothing runs on them", async () => {
    const { queue, work, wait } = setup({ maxWaitMs: 5_000 });
    work.set("a", { running: 1, queued: 3 });
    const waiter = wait("b", ["a"], 1);
    expect(queue.draining.has(key("n", "a"))).toBe(false);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(queue.draining.has(key("n", "a"))).toBe(true);
    expect(await settled(waiter.promise)).toBe(false);
    // Its queued requests wait for their next turn: only the running one matters now.
    work.set("a", { running: 0, queued: 3 });
    vi.advanceTimersByTime(250);
    queue.settled(false);
    await expect(waiter.promise).resolves.toMatchObject({ waitedMs: 5_250 });
    // Until the swap's requests have decided, nothing new lands on the blocker.
    expect(queue.draining.has(key("n", "a"))).toBe(true);
  });

  it("refuses a new arrival past queue_max per node, never a request coming back", async () => {
    const { work, wait } = setup({ maxQueued: 1 });
    work.set("a", { running: 1, queued: 0 });
    wait("b", ["a"], 1);
    const refused = wait("c", ["a"], 2);
    await expect(refused.promise).rejects.toMatchObject({ code: "overloaded" });
    const back = wait("c", ["a"], 3, true);
    expect(await settled(back.promise)).toBe(false);
  });

  it("times out at the request's deadline with 504 queue_timeout, leaving the line", async () => {
    const { queue, work, wait } = setup();
    work.set("a", { running: 1, queued: 0 });
    const waiter = wait("b", ["a"], 1);
    const outcome = waiter.promise.catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(60_000);
    const error = await outcome;
    expect(error).toBeInstanceOf(CortexError);
    expect(error).toMatchObject({ code: "queue_timeout" });
    expect(queue.depths().size).toBe(0);
  });

  it("a client that goes away leaves the line at once", async () => {
    const { queue, work, wait } = setup();
    work.set("a", { running: 1, queued: 0 });
    const waiter = wait("b", ["a"], 1);
    waiter.abort();
    await expect(waiter.promise).rejects.toThrow("client went away");
    expect(queue.depths().size).toBe(0);
  });

  it("wakes a group to decide again when its swap no longer applies (memory came free elsewhere)", async () => {
    const { queue, work, wait, setRecheck, events } = setup();
    work.set("a", { running: 1, queued: 0 });
    const waiter = wait("b", ["a"], 1);
    setRecheck(() => null);
    queue.settled(true);
    await expect(waiter.promise).resolves.toBeNull();
    expect(events.map((event) => event.type)).toEqual(["swap_queued"]);
  });

  it("takes fresh blockers from a recheck", async () => {
    const { queue, work, wait, setRecheck } = setup();
    work.set("a", { running: 1, queued: 0 });
    work.set("c", { running: 1, queued: 0 });
    const waiter = wait("b", ["a"], 1);
    setRecheck(() => ["c"]);
    queue.settled(true);
    work.set("a", { running: 0, queued: 0 });
    queue.settled(false);
    expect(await settled(waiter.promise)).toBe(false);
    work.set("c", { running: 0, queued: 0 });
    queue.settled(false);
    await expect(waiter.promise).resolves.not.toBeNull();
  });

  it("does not fire the same swap again and again when its requests come straight back", async () => {
    const { queue, work, wait } = setup();
    work.set("a", { running: 0, queued: 0 });
    // Each woken request comes back at once, as if the placement disagreed.
    let fired = 0;
    let waiter = wait("b", ["a"], 1);
    for (let round = 0; round < 6 && (await settled(waiter.promise)); round += 1) {
      fired += 1;
      waiter = wait("b", ["a"], 1, true);
    }
    expect(fired).toBe(3);
    expect(queue.depths().get("b")).toBe(1);
    // A real change (a release, a new fleet) lets it try again.
    queue.settled(false);
    await expect(waiter.promise).resolves.not.toBeNull();
  });

  it("holds a replica drained by a scale-in until the undo", () => {
    const { queue } = setup();
    const undo = queue.drainReplica("n", "a");
    queue.settled(false);
    expect(queue.draining.has(key("n", "a"))).toBe(true);
    undo();
    expect(queue.draining.has(key("n", "a"))).toBe(false);
  });
});
