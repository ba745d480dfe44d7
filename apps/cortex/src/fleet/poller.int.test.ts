import type { DiscoveryAnswer, NeuronModel } from "@cortex/protocol";
import { type FakeNeuron, gpuDevice, neuronModel, startFakeNeuron } from "@cortex/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { silentLog } from "../log.js";
import { NeuronClient } from "../neurons/neuron-client.js";
import { FleetStore, type StoreTarget } from "./fleet-store.js";
import { Poller } from "./poller.js";

// The poller with real clients against fake neurons on loopback: health follows the neurons.

const TOKEN = "poll-token";

const model = (id: string): NeuronModel => neuronModel(id, { devices: [0], vram_mb: 1000 });

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const fleet = async (names: readonly string[]) => {
  const neurons = new Map<string, FakeNeuron>();
  for (const name of names) {
    const neuron = await startFakeNeuron({
      name,
      token: TOKEN,
      models: [model(`${name}-m`)],
      devices: [gpuDevice(0, 24_000, 24_000, { name: "GPU" })],
    });
    closers.push(() => neuron.close());
    neurons.set(name, neuron);
  }
  const targets: StoreTarget[] = names.map((name) => ({
    name,
    url: neurons.get(name)?.url ?? "",
    token: TOKEN,
  }));
  const clients = new Map(
    targets.map((target) => [
      target.name,
      new NeuronClient({ ...target, token: TOKEN, timeoutMs: 1000 }),
    ]),
  );
  closers.push(() => {
    for (const client of clients.values()) client.close();
  });
  const store = new FleetStore(targets);
  const discovered: [string, DiscoveryAnswer][] = [];
  const poller = new Poller({
    store,
    targets,
    client: (name) => clients.get(name) as NeuronClient,
    intervalMs: 60_000,
    discoveryIntervalMs: 60_000,
    concurrency: 4,
    unhealthyAfter: 2,
    log: silentLog,
    onDiscovery: (node, answer) => discovered.push([node, answer]),
  });
  closers.push(() => poller.stop());
  const node = (name: string) => store.snapshot.nodes.find((n) => n.name === name);
  return { neurons, clients, store, poller, node, discovered };
};

describe("Poller against fake neurons", () => {
  it("follows the fleet: healthy, dead, back again", async () => {
    const { neurons, poller, node, discovered, clients } = await fleet(["a", "b", "c"]);
    await poller.tick();
    for (const name of ["a", "b", "c"]) {
      expect(node(name)).toMatchObject({
        healthy: true,
        node: { name },
        devices: [{ index: 0, vram_total_mb: 24_000 }],
        models: [{ id: `${name}-m`, status: "loaded" }],
      });
    }
    expect(discovered.map(([name]) => name).sort()).toEqual(["a", "b", "c"]);

    await neurons.get("b")?.kill();
    await poller.tick();
    // No answer at all: suspect at once (issue 16), not after unhealthy_after_failures polls.
    expect(node("b")).toMatchObject({ healthy: false, consecutive_failures: 1 });
    expect(node("b")?.error).toContain("suspect: no answer to /models");
    await poller.tick();
    expect(node("b")).toMatchObject({
      healthy: false,
      consecutive_failures: 2,
      models: [{ id: "b-m" }],
    });
    expect(node("b")?.error).toContain('neuron "b"');

    // A model loaded behind cortex's back shows up at the next poll; b comes back rediscovered.
    await clients.get("a")?.load({ model_id: "extra", harness: "llamacpp", source: "x.gguf" });
    await neurons.get("b")?.revive();
    await poller.tick();
    expect(node("b")).toMatchObject({ healthy: true, consecutive_failures: 0, error: null });
    expect(discovered.filter(([name]) => name === "b")).toHaveLength(2);
    expect(node("a")?.models.map((m) => m.id)).toEqual(["a-m", "extra"]);
  });

  it("starts polling on start and stops cleanly", async () => {
    const { poller, store } = await fleet(["a"]);
    const healthy = new Promise<void>((resolve) => {
      const unsubscribe = store.subscribe((event) => {
        if (event.type === "node_health" && event.healthy) {
          unsubscribe();
          resolve();
        }
      });
    });
    poller.start();
    await healthy;
    await poller.stop();
    expect(store.snapshot.nodes[0]?.healthy).toBe(true);
  });
});
