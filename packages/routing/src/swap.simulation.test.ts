import { describe, expect, it } from "vitest";
import { nextSwap, type ResidentWork } from "./swap.js";

// A deterministic simulation of one 24 GB GPU and three 16 GB models (one fits at a time):
// requests arrive, wait, run for `serviceMs` each (at most `concurrency` at once per model),
// and a swap costs `loadMs`. Two policies: FIFO (serve strictly in arrival order, swapping
// whenever the next request's model is not resident: what llama-swap did first) and collated
// (the swap scheduler, `nextSwap`). Time advances from event to event; nothing sleeps.

interface Arrival {
  readonly model: string;
  readonly atMs: number;
}

interface Settings {
  readonly serviceMs: number;
  readonly loadMs: number;
  readonly concurrency: number;
  readonly maxWaitMs: number;
}

interface Outcome {
  readonly loads: number;
  readonly served: number;
  /** Longest time from arrival to the start of service. */
  readonly longestWaitMs: number;
  readonly waits: ReadonlyMap<number, number>;
}

interface Request extends Arrival {
  readonly id: number;
  /** When it began waiting for a swap (arrival, or the moment its model was swapped out). */
  swapSinceMs: number;
  /** Queued for the swap that brought its model in: served even while the model drains. */
  turn: boolean;
}

class Gpu {
  resident: string | null = null;
  readyAtMs = 0;
  running: number[] = []; // end times
  loads = 0;
}

const simulate = (
  arrivals: readonly Arrival[],
  settings: Settings,
  policy: "fifo" | "collated",
): Outcome => {
  const requests: Request[] = arrivals
    .map((arrival, id) => ({ ...arrival, id, swapSinceMs: arrival.atMs, turn: false }))
    .sort((a, b) => a.atMs - b.atMs || a.id - b.id);
  const gpu = new Gpu();
  const waits = new Map<number, number>();
  const waiting: Request[] = [];
  let draining = false;
  let next = 0;
  let nowMs = 0;
  let timerMs = Number.POSITIVE_INFINITY;

  const start = (request: Request) => {
    waits.set(request.id, nowMs - request.atMs);
    gpu.running.push(nowMs + settings.serviceMs);
    waiting.splice(waiting.indexOf(request), 1);
  };
  const swapTo = (model: string) => {
    gpu.resident = model;
    gpu.readyAtMs = nowMs + settings.loadMs;
    gpu.loads += 1;
    draining = false;
    for (const request of waiting) {
      if (request.model === model) request.turn = true;
      // Swapped out: requests for the old model now wait for its next turn, from now.
      else if (!request.turn) request.swapSinceMs = Math.max(request.swapSinceMs, nowMs);
    }
    for (const request of waiting) if (request.model !== model) request.turn = false;
  };
  const ready = () => gpu.resident !== null && nowMs >= gpu.readyAtMs;
  const admit = () => {
    if (!ready()) return;
    for (const request of [...waiting]) {
      if (gpu.running.length >= settings.concurrency) return;
      if (policy === "fifo" && request.model !== gpu.resident) return; // head of line
      if (request.model !== gpu.resident) continue;
      if (draining && !request.turn) continue;
      start(request);
    }
  };
  const decide = () => {
    if (policy === "fifo") {
      const head = waiting[0];
      if (head && head.model !== gpu.resident && gpu.running.length === 0 && ready()) {
        swapTo(head.model);
      } else if (head && gpu.resident === null) swapTo(head.model);
      return;
    }
    const groups = new Map<string, { sinceMs: number; waiting: number }>();
    let residentQueued = 0;
    for (const request of waiting) {
      if (request.model === gpu.resident) {
        if (!draining || request.turn) residentQueued += 1;
        continue;
      }
      const group = groups.get(request.model) ?? { sinceMs: request.swapSinceMs, waiting: 0 };
      group.sinceMs = Math.min(group.sinceMs, request.swapSinceMs);
      group.waiting += 1;
      groups.set(request.model, group);
    }
    const work = new Map<string, ResidentWork>();
    if (gpu.resident !== null) {
      // A load under way is work, like a request running.
      const running = gpu.running.length + (ready() ? 0 : 1);
      work.set(gpu.resident, { running, queued: residentQueued });
    }
    const action = nextSwap({
      nowMs,
      maxWaitMs: settings.maxWaitMs,
      work,
      groups: [...groups].map(([model, group]) => ({
        model,
        ...group,
        blockers: gpu.resident === null ? [] : [gpu.resident],
      })),
    });
    timerMs = Number.POSITIVE_INFINITY;
    if (action.kind === "swap") swapTo(action.model);
    else if (action.kind === "drain") draining = true;
    else if (action.kind === "wait") timerMs = action.untilMs;
  };

  for (;;) {
    // Everything due now happens, then the scheduler and admission look at the result.
    gpu.running = gpu.running.filter((end) => end > nowMs);
    while (next < requests.length && (requests[next]?.atMs ?? 0) <= nowMs) {
      const request = requests[next++];
      if (request) waiting.push(request);
    }
    for (let round = 0; round < 3; round += 1) {
      decide();
      admit();
    }
    const upcoming = [
      requests[next]?.atMs ?? Number.POSITIVE_INFINITY,
      ...gpu.running,
      gpu.readyAtMs > nowMs ? gpu.readyAtMs : Number.POSITIVE_INFINITY,
      timerMs > nowMs ? timerMs : Number.POSITIVE_INFINITY,
    ];
    const at = Math.min(...upcoming);
    if (at === Number.POSITIVE_INFINITY) break;
    nowMs = at;
  }
  return {
    loads: gpu.loads,
    served: waits.size,
    longestWaitMs: Math.max(0, ...waits.values()),
    waits,
  };
};

const SETTINGS: Settings = { serviceMs: 500, loadMs: 2_000, concurrency: 4, maxWaitMs: 30_000 };

const interleaved = (count: number, atMs = 0): Arrival[] =>
  Array.from({ length: count }, (_, index) => ({ model: "abc"[index % 3] ?? "a", atMs }));

describe("swap scheduling on one 24 GB GPU with three 16 GB models", () => {
  it("30 requests interleaved A B C … at once: collated loads each model once, FIFO thrashes", () => {
    const arrivals = interleaved(30);
    const fifo = simulate(arrivals, SETTINGS, "fifo");
    const collated = simulate(arrivals, SETTINGS, "collated");
    expect(fifo.served).toBe(30);
    expect(collated.served).toBe(30);
    expect(fifo.loads).toBe(30);
    expect(collated.loads).toBe(3);
    // The last request starts after three loads, A's and B's three rounds of 4 + 4 + 2, and
    // C's first two: far sooner than behind FIFO's 30 swaps.
    expect(collated.longestWaitMs).toBe(3 * SETTINGS.loadMs + 8 * SETTINGS.serviceMs);
    expect(fifo.longestWaitMs).toBe(30 * SETTINGS.loadMs + 29 * SETTINGS.serviceMs);
  });

  it("arrivals spread over time still cost one load per change of model, not per request", () => {
    const arrivals = interleaved(30).map((arrival, index) => ({
      ...arrival,
      atMs: index * 100,
    }));
    const collated = simulate(arrivals, SETTINGS, "collated");
    const fifo = simulate(arrivals, SETTINGS, "fifo");
    expect(collated.served).toBe(30);
    expect(collated.loads).toBeLessThan(fifo.loads);
    expect(collated.loads).toBeLessThanOrEqual(6);
  });

  it("a model kept busy without end is drained at the bound: the other waits at most bound + drain + load", () => {
    const maxWaitMs = 5_000;
    // A request for A every 100 ms for 30 s keeps A always busy; one request for B at 1 s.
    const arrivals: Arrival[] = Array.from({ length: 300 }, (_, index) => ({
      model: "a",
      atMs: index * 100,
    }));
    arrivals.push({ model: "b", atMs: 1_000 });
    const settings = { ...SETTINGS, maxWaitMs };
    const collated = simulate(arrivals, settings, "collated");
    expect(collated.served).toBe(301);
    const bWait = collated.waits.get(300) ?? Number.POSITIVE_INFINITY;
    expect(bWait).toBeGreaterThanOrEqual(maxWaitMs);
    expect(bWait).toBeLessThanOrEqual(maxWaitMs + settings.serviceMs + settings.loadMs);
    // A came back after B: 3 loads (A, B, A), and every request of A was served, none lost.
    expect(collated.loads).toBe(3);
  });

  it("without the bound (a bound longer than the run) the same B would wait for A to go idle", () => {
    const arrivals: Arrival[] = Array.from({ length: 300 }, (_, index) => ({
      model: "a",
      atMs: index * 100,
    }));
    arrivals.push({ model: "b", atMs: 1_000 });
    const collated = simulate(arrivals, { ...SETTINGS, maxWaitMs: 10_000_000 }, "collated");
    expect(collated.waits.get(300)).toBeGreaterThan(28_000);
  });
});
