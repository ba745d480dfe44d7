import type { ModelStatus } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { NeuronError } from "../errors.js";
import { systemTimers } from "../timers.js";
import { Admission } from "./admission.js";
import { silent } from "./model-manager.fixtures.js";
import { type Swappable, SwapQueue } from "./swap-queue.js";

// The swap queue's glue around nextSwap, with scripted models (a real Admission each), scripted
// room planning and loads, and fake timers. A "request" does what serve.ts does: it takes a
// slot, asks for the reload of an unloaded model, waits for it, and wakes the queue when done.

const MAX_WAIT_MS = 30_000;
const QUEUE_TIMEOUT_MS = 60_000;

interface Fake extends Swappable {
  status: ModelStatus;
}

let models: Map<string, Fake>;
/**
 * What must leave for a model to fit. By default one model fits at a time: every other
 * resident (loaded or loading) must go. A test may make it refuse.
 */
let planner: (entry: Fake) => readonly string[];
/** Every swap carried out, in order: the model and what it evicted. */
let swaps: [string, readonly string[]][];
/** The load each swap started, to finish as the test decides. */
let loads: Map<string, { finish: () => void; endAsIs: () => void }>;
let queue: SwapQueue<Fake>;
/** What a swap-in does besides the bookkeeping above (a test may make it misbehave). */
let onSwapIn: (entry: Fake) => void;

const model = (id: string, status: ModelStatus = "loaded", concurrency = 1): Fake => {
  const entry: Fake = {
    spec: { id },
    status,
    admission: new Admission(concurrency, { maxQueued: 8, queueTimeoutMs: QUEUE_TIMEOUT_MS }),
    loading: null,
  };
  models.set(id, entry);
  return entry;
};

const get = (id: string): Fake => {
  const entry = models.get(id);
  if (!entry) throw new Error(`no model ${id}`);
  return entry;
};

/** Runs the event loop's microtasks (where the queue evaluates) without moving the clock. */
const flush = () => vi.advanceTimersByTimeAsync(0);

const onlyOneFits = (entry: Fake): readonly string[] =>
  [...models.values()]
    .filter((other) => other !== entry && (other.status === "loaded" || other.status === "loading"))
    .map((other) => other.spec.id);

/** A request for `id` as serve.ts makes it (three tries, as its whenLoaded); what it got. */
const ask = (id: string): Promise<string> => {
  const entry = get(id);
  const arrived = Date.now();
  return entry.admission
    .run(async () => {
      for (let attempt = 0; attempt < 3; attempt += 1) {
        if (entry.status === "loaded") return "served";
        if (entry.status === "unloaded" && !entry.loading) queue.request(entry);
        if (!entry.loading) break;
        await queue.wait(entry, undefined, arrived + QUEUE_TIMEOUT_MS);
      }
      return entry.status === "loaded" ? "served" : `not served: ${entry.status}`;
    })
    .catch((error: unknown) => `failed: ${(error as NeuronError).code}`)
    .finally(() => queue.wake());
};

/** A request running on `id` until the returned function ends it. */
const busy = (id: string): (() => Promise<void>) => {
  let end: () => void = () => {};
  const done = get(id)
    .admission.run(() => new Promise<void>((resolve) => (end = resolve)))
    .finally(() => queue.wake());
  return async () => {
    end();
    await done;
    await flush();
  };
};

beforeEach(() => {
  vi.useFakeTimers();
  models = new Map();
  planner = onlyOneFits;
  swaps = [];
  loads = new Map();
  onSwapIn = () => {};
  queue = new SwapQueue<Fake>({
    now: () => Date.now(),
    timers: systemTimers,
    log: silent,
    maxWaitMs: MAX_WAIT_MS,
    entries: () => [...models.values()],
    blockers: (entry) => planner(entry),
    swapIn: (entry, evict) => {
      swaps.push([entry.spec.id, [...evict]]);
      // As the manager does: claimed at once, the victims kept `unloaded`.
      entry.status = "loading";
      for (const id of evict) get(id).status = "unloaded";
      return new Promise<void>((resolve) => {
        loads.set(entry.spec.id, {
          finish: () => {
            entry.status = "loaded";
            resolve();
          },
          endAsIs: resolve,
        });
        onSwapIn(entry);
      });
    },
  });
});

afterEach(() => {
  vi.useRealTimers();
});

const finishLoad = async (id: string) => {
  loads.get(id)?.finish();
  await flush();
};

describe("the neuron's swap queue", () => {
  it("swaps at once when the blockers are idle, and every request queued shares that one load", async () => {
    model("a");
    model("b", "unloaded", 2);
    const answers = [ask("b"), ask("b"), ask("b")];
    await flush();
    expect(swaps).toEqual([["b", ["a"]]]);
    expect(get("a").status).toBe("unloaded");
    await finishLoad("b");
    expect(await Promise.all(answers)).toEqual(["served", "served", "served"]);
    expect(swaps).toHaveLength(1);
  });

  it("lets a busy blocker's work flow, and swaps when its last request ends", async () => {
    model("a", "loaded", 2);
    model("b", "unloaded");
    const endFirst = busy("a");
    const endSecond = busy("a");
    const answer = ask("b");
    await flush();
    expect(swaps).toEqual([]);
    expect(queue.holds(get("b"))).toBe(true);
    // More requests for the resident keep flowing while it has work: nothing is paused.
    expect(get("a").admission.paused).toBe(false);
    await endFirst();
    expect(swaps).toEqual([]);
    await endSecond();
    expect(swaps).toEqual([["b", ["a"]]]);
    await finishLoad("b");
    expect(await answer).toBe("served");
  });

  it("collates: reloads waiting for one busy model go one per model, the oldest first", async () => {
    model("a");
    model("b", "unloaded");
    model("c", "unloaded");
    const end = busy("a");
    const forC = ask("c");
    vi.advanceTimersByTime(10);
    const forB = ask("b");
    await flush();
    await end();
    expect(swaps).toEqual([["c", ["a"]]]);
    // b now waits for c, which is loading (busy until it has served what waited for it).
    await flush();
    expect(swaps).toHaveLength(1);
    await finishLoad("c");
    expect(await forC).toBe("served");
    await flush();
    expect(swaps).toEqual([
      ["c", ["a"]],
      ["b", ["c"]],
    ]);
    await finishLoad("b");
    expect(await forB).toBe("served");
  });

  it("drains the blockers after swap_max_wait_ms, swaps once their running requests end, and resumes them unloaded", async () => {
    model("a", "loaded", 2);
    model("b", "unloaded");
    const end = busy("a");
    const forB = ask("b");
    await flush();
    // No event at all: the queue's own timer brings the starvation bound.
    await vi.advanceTimersByTimeAsync(MAX_WAIT_MS);
    expect(get("a").admission.paused).toBe(true);
    // A request for the draining model waits, even with a slot free.
    const forA = ask("a");
    await flush();
    expect([get("a").admission.running, get("a").admission.queued]).toEqual([1, 1]);
    expect(swaps).toEqual([]);
    // Its running request ends: the swap goes, and a (unloaded now) takes requests again:
    // the one that waited asks for a's own reload, which waits for b in turn.
    await end();
    expect(swaps).toEqual([["b", ["a"]]]);
    expect(get("a").admission.paused).toBe(false);
    expect(queue.holds(get("a"))).toBe(true);
    await finishLoad("b");
    expect(await forB).toBe("served");
    await flush();
    expect(swaps).toEqual([
      ["b", ["a"]],
      ["a", ["b"]],
    ]);
    await finishLoad("a");
    expect(await forA).toBe("served");
  });

  it("serves every request queued for a swap, even when its model drains right after", async () => {
    model("a");
    model("b", "unloaded");
    model("c", "unloaded");
    const end = busy("a");
    const forB = [ask("b"), ask("b"), ask("b")];
    vi.advanceTimersByTime(10);
    const forC = ask("c");
    await end();
    expect(swaps).toEqual([["b", ["a"]]]);
    // c has waited long enough while b loads: b drains before its requests have even run.
    await vi.advanceTimersByTimeAsync(MAX_WAIT_MS);
    expect(get("b").admission.paused).toBe(true);
    const late = ask("b");
    const settled: string[] = [];
    for (const answer of forB) void answer.then((got) => settled.push(got));
    await finishLoad("b");
    // The three that waited for b's swap all ran; the one that came during the drain waits.
    expect(settled).toEqual(["served", "served", "served"]);
    expect(swaps).toEqual([
      ["b", ["a"]],
      ["c", ["b"]],
    ]);
    expect(queue.holds(get("b"))).toBe(true);
    await finishLoad("c");
    expect(await forC).toBe("served");
    await finishLoad("b");
    expect(await late).toBe("served");
  });

  it("answers 504 queue_timeout at a waiting request's deadline, then drops the reload nobody waits for", async () => {
    model("a");
    model("b", "unloaded");
    const end = busy("a");
    const answer = ask("b");
    await flush();
    await vi.advanceTimersByTimeAsync(QUEUE_TIMEOUT_MS);
    expect(await answer).toBe("failed: queue_timeout");
    await flush();
    expect(queue.holds(get("b"))).toBe(false);
    expect(get("b")).toMatchObject({ status: "unloaded", loading: null });
    expect(get("a").admission.paused).toBe(false);
    await end();
    expect(swaps).toEqual([]);
  });

  it("refuses at once, changing nothing, a reload that no wait could make room for", () => {
    model("b", "unloaded");
    planner = () => {
      throw new NeuronError("insufficient_vram", "too big");
    };
    expect(() => queue.request(get("b"))).toThrow("too big");
    expect(queue.holds(get("b"))).toBe(false);
    expect(get("b").loading).toBeNull();
  });

  it("fails the waiting requests when the room can no longer come (a model of higher priority took it)", async () => {
    model("a");
    model("b", "unloaded");
    const end = busy("a");
    const answer = ask("b");
    await flush();
    planner = () => {
      throw new NeuronError("insufficient_vram", "held by a model of higher priority");
    };
    queue.wake();
    expect(await answer).toBe("failed: insufficient_vram");
    await end();
    expect(swaps).toEqual([]);
  });

  it("does not spin when a swap comes straight back in the same state", async () => {
    model("a");
    model("b", "unloaded", 2);
    // A load that comes to nothing at once: b unloaded again, a back, nothing else changed. Its
    // request, finding b unloaded, asks for the reload again (whenLoaded's next try).
    onSwapIn = (entry) => {
      entry.status = "unloaded";
      get("a").status = "loaded";
      loads.get(entry.spec.id)?.endAsIs();
    };
    const first = ask("b");
    for (let turn = 0; turn < 10; turn += 1) await flush();
    expect(swaps).toHaveLength(1);
    // Something changes (one more request waits): the queue decides again, once.
    const second = ask("b");
    for (let turn = 0; turn < 10; turn += 1) await flush();
    expect(swaps).toHaveLength(2);
    queue.close(new NeuronError("service_unavailable", "shutting down"));
    expect(await first).toBe("failed: service_unavailable");
    expect(await second).toBe("failed: service_unavailable");
  });

  it("tries a swap that came to nothing again once the model's status changed", async () => {
    model("a");
    model("b", "unloaded");
    onSwapIn = (entry) => {
      entry.status = "unloaded";
      get("a").status = "loaded";
      loads.get(entry.spec.id)?.endAsIs();
    };
    const answer = ask("b");
    for (let turn = 0; turn < 10; turn += 1) await flush();
    expect(swaps).toHaveLength(1);
    // b's status changes (an explicit load came and went, say): the same state is news now.
    onSwapIn = () => {};
    queue.changed(get("b"));
    await flush();
    expect(swaps).toHaveLength(2);
    await finishLoad("b");
    expect(await answer).toBe("served");
  });

  it("withdraws a reload (a forced unload): those waiting hear why", async () => {
    model("a");
    model("b", "unloaded");
    const end = busy("a");
    const answer = ask("b");
    await flush();
    queue.withdraw(get("b"), new NeuronError("service_unavailable", "unloaded"));
    expect(await answer).toBe("failed: service_unavailable");
    await end();
    expect(swaps).toEqual([]);
  });

  it("keeps a reload waiting while a POST /models/load joins it, after its requests left", async () => {
    model("a");
    model("b", "unloaded");
    const end = busy("a");
    const request = ask("b");
    await flush();
    const load = queue.join(get("b"));
    await vi.advanceTimersByTimeAsync(QUEUE_TIMEOUT_MS);
    expect(await request).toBe("failed: queue_timeout");
    await flush();
    expect(queue.holds(get("b"))).toBe(true);
    await end();
    expect(swaps).toEqual([["b", ["a"]]]);
    await finishLoad("b");
    await load;
    expect(get("b").status).toBe("loaded");
  });
});
