import type { FleetEvent } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { chat, gpu, resident, useCortexFleet } from "./cortex.fixtures.js";

// Scheduling under contention (issue 15), in-process against fake neurons: requests wait for a
// swap instead of 503 no_capacity, are collated by model, a busy model is drained at the
// starvation bound, and saturated models scale out to max_replicas (min_replicas and scale-in:
// replicas.int.test.ts).

const big = (id: string, fields: Record<string, unknown> = {}) => ({
  id,
  harness: "llamacpp",
  source: `${id}.gguf`,
  vram_mb: 16_000,
  max_concurrency: 4,
  ...fields,
});

const { fleet, neuron } = useCortexFleet({
  models: [big("a"), big("b"), big("c"), big("wide", { max_concurrency: 2, max_replicas: 2 })],
});

const GPU_24 = [gpu(0, 24_000)];

const recordEvents = (c: { store: { subscribe(listener: (e: FleetEvent) => void): unknown } }) => {
  const events: FleetEvent[] = [];
  c.store.subscribe((event) => events.push(event));
  return events;
};

const loadsOf = (name: string) =>
  [...neuron(name).loadsStarted.values()].reduce((a, b) => a + b, 0);

describe("contention", () => {
  it("a request for a model whose memory busy models hold waits for the swap instead of 503", async () => {
    const c = await fleet([
      { name: "n", devices: GPU_24, models: [resident("a", { vram_mb: 16_000 })] },
    ]);
    const events = recordEvents(c);
    neuron("n").setLatency(400);
    const first = chat(c, "a");
    await expect.poll(() => neuron("n").inFlight("a")).toBe(1);
    const second = await chat(c, "b");
    expect(second.status).toBe(200);
    expect((await first).status).toBe(200);
    expect(neuron("n").unloads.map((unload) => unload.model_id)).toEqual(["a"]);
    expect(events.map((event) => event.type)).toEqual(
      expect.arrayContaining(["swap_queued", "swap_started", "evicted", "load_finished"]),
    );
    const started = events.find((event) => event.type === "swap_started");
    expect(started).toMatchObject({ node: "n", model: "b", evicting: ["a"], waiting: 1 });
    await expect.poll(() => c.dispatcher.swaps.depths().size).toBe(0);
  });

  it("30 requests interleaved over three models that fit one at a time: all served, one load each", async () => {
    const c = await fleet([{ name: "n", devices: GPU_24, loadDelayMs: 100 }], {
      queue_timeout_ms: 20_000,
    });
    neuron("n").setLatency(100);
    const models = ["a", "b", "c"];
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, index) => chat(c, models[index % 3] ?? "a")),
    );
    expect(answers.map((answer) => answer.status)).toEqual(Array(30).fill(200));
    expect(loadsOf("n")).toBe(3);
    expect(neuron("n").requests.get("a")).toBe(10);
    await expect.poll(() => c.dispatcher.reservations.total).toBe(0);
  });

  it("a model kept busy is drained at swap_max_wait_ms; its later requests wait for their next turn", async () => {
    const c = await fleet([{ name: "n", devices: GPU_24, loadDelayMs: 50 }], {
      swap_max_wait_ms: 600,
      queue_timeout_ms: 20_000,
    });
    const events = recordEvents(c);
    neuron("n").setLatency(150);
    // Four clients, started apart once A is loaded, keep A busy without a gap; then B is asked for.
    expect((await chat(c, "a")).status).toBe(200);
    let stop = false;
    const statuses: number[] = [];
    const keepBusy = async (delayMs: number) => {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      while (!stop) statuses.push((await chat(c, "a")).status);
    };
    const clients = [0, 40, 80, 120].map(keepBusy);
    await expect.poll(() => neuron("n").requests.get("a") ?? 0).toBeGreaterThan(4);
    const b = await chat(c, "b");
    const aRequestsWhenBWasServed = neuron("n").requests.get("a") ?? 0;
    expect(b.status).toBe(200);
    // A came back after B, and kept being served: nothing was lost or refused.
    await expect
      .poll(() => neuron("n").requests.get("a") ?? 0, { timeout: 10_000 })
      .toBeGreaterThan(aRequestsWhenBWasServed);
    stop = true;
    await Promise.all(clients);
    expect(statuses.every((status) => status === 200)).toBe(true);
    expect(neuron("n").loadsStarted.get("a")).toBe(2);
    // The swap came from the bound, not from A going idle by chance.
    const swap = events.find((event) => event.type === "swap_started");
    expect(swap).toMatchObject({ model: "b", evicting: ["a"] });
    expect(swap?.type === "swap_started" && swap.waited_ms).toBeGreaterThanOrEqual(600);
  });

  it("a saturated model scales out to max_replicas on a node that can hold it", async () => {
    const c = await fleet([
      {
        name: "m",
        devices: GPU_24,
        models: [resident("wide", { vram_mb: 16_000, max_concurrency: 2 })],
      },
      { name: "n", devices: GPU_24 },
    ]);
    const events = recordEvents(c);
    neuron("m").setLatency(500);
    neuron("n").setLatency(500);
    const answers = await Promise.all(Array.from({ length: 8 }, () => chat(c, "wide")));
    expect(answers.map((answer) => answer.status)).toEqual(Array(8).fill(200));
    expect(neuron("n").requests.get("wide") ?? 0).toBeGreaterThan(0);
    expect(events.filter((event) => event.type === "scaled_out")).toEqual([
      expect.objectContaining({ node: "n", model: "wide", reason: "demand", replicas: 2 }),
    ]);
  });
});
