import type { FleetEvent } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { chat, gpu, useCortexFleet } from "./cortex.fixtures.js";

// min_replicas and scale-in (issue 15), in-process against fake neurons: cortex keeps the
// minimum loaded without a request, after a node comes back, and unloads idle replicas beyond
// it after their TTL, never below.

const { fleet, neuron } = useCortexFleet({
  models: [
    {
      id: "kept",
      harness: "llamacpp",
      source: "kept.gguf",
      vram_mb: 16_000,
      max_concurrency: 1,
      min_replicas: 1,
      max_replicas: 2,
      idle_ttl_s: 1,
    },
  ],
});

const GPU_24 = [gpu(0, 24_000)];

const recordEvents = (c: { store: { subscribe(listener: (e: FleetEvent) => void): unknown } }) => {
  const events: FleetEvent[] = [];
  c.store.subscribe((event) => events.push(event));
  return events;
};

describe("replicas", () => {
  it("keeps min_replicas loaded without a request, scales in to it when idle, never below", async () => {
    const c = await fleet([
      { name: "m", devices: GPU_24 },
      { name: "n", devices: GPU_24 },
    ]);
    const events = recordEvents(c);
    const holders = () =>
      c.store.snapshot.nodes.filter((node) =>
        node.models.some((model) => model.id === "kept" && model.status === "loaded"),
      ).length;
    await expect.poll(holders, { timeout: 5000 }).toBe(1);
    // Its neuron does not unload it by itself: cortex keeps the minimum.
    const kept = [...neuron("m").loads, ...neuron("n").loads].find((l) => l.model_id === "kept");
    expect(kept?.idle_ttl_s).toBe(0);
    // Two at once on a one-slot model: a second replica for the waiting one.
    neuron("m").setLatency(600);
    neuron("n").setLatency(600);
    const answers = await Promise.all([chat(c, "kept"), chat(c, "kept")]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    await expect.poll(holders, { timeout: 5000 }).toBe(2);
    // Idle for its TTL (1 s): back to one, and it stays there.
    await expect.poll(holders, { timeout: 8000 }).toBe(1);
    expect(events.some((event) => event.type === "scaled_in")).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(holders()).toBe(1);
  });

  it("loads the minimum again after its node came back empty", async () => {
    const c = await fleet([{ name: "m", devices: GPU_24 }]);
    const loaded = () =>
      c.store.snapshot.nodes[0]?.models.some((m) => m.id === "kept" && m.status === "loaded");
    await expect.poll(loaded, { timeout: 5000 }).toBe(true);
    await neuron("m").kill();
    neuron("m").setModels([]);
    await expect.poll(() => c.store.snapshot.nodes[0]?.healthy, { timeout: 5000 }).toBe(false);
    await neuron("m").revive();
    // No request asks for it: cortex loads it again because it is the minimum.
    await expect.poll(() => neuron("m").loadsStarted.get("kept"), { timeout: 8000 }).toBe(2);
    await expect.poll(loaded, { timeout: 5000 }).toBe(true);
  });
});
