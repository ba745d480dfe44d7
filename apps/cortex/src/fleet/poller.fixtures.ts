import type { DiscoveryAnswer, ModelsAnswer, NeuronModel } from "@cortex/protocol";
import { gpuDevice, neuronModel } from "@cortex/testkit";
import { vi } from "vitest";
import { silentLog } from "../log.js";
import { FleetStore, type StoreTarget } from "./fleet-store.js";
import { type NeuronClientLike, Poller, type PollerOptions } from "./poller.js";

// Shared by the poller's unit tests: fake neuron clients, a gate to hold calls, and a poller over
// a fresh store. The tests fake only setTimeout/Date, so a real setImmediate lets promises settle.

export const model = (id: string, overrides: Partial<NeuronModel> = {}): NeuronModel =>
  neuronModel(id, { devices: [0], vram_mb: 1000, ...overrides });

export const discoveryOf = (name: string): DiscoveryAnswer => ({
  node: { name, hostname: name, os: "Linux", kernel: "6", cpu: "x", memory_mb: 1024 },
  devices: [gpuDevice(0, 24_000, 20_000, { name: "GPU", utilization_pct: 0 })],
  harnesses: [{ name: "llamacpp", kind: "builtin" }],
});

/** A scriptable neuron: answers (fresh copies, like a parse), failures, and a gate to hold calls. */
export class FakeClient implements NeuronClientLike {
  answer: ModelsAnswer = [model("m1")];
  discoveryAnswer: DiscoveryAnswer;
  failure: Error | null = null;
  discoveryFailure: Error | null = null;
  gate: Promise<void> | null = null;
  modelsCalls = 0;
  discoveryCalls = 0;
  readonly signals: AbortSignal[] = [];

  constructor(
    name: string,
    readonly activity: { now: number; max: number },
  ) {
    this.discoveryAnswer = discoveryOf(name);
  }

  async #wait(signal: AbortSignal | undefined): Promise<void> {
    if (signal) this.signals.push(signal);
    this.activity.now += 1;
    this.activity.max = Math.max(this.activity.max, this.activity.now);
    try {
      if (!this.gate) return;
      const gate = this.gate;
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(new Error("aborted"));
        signal?.addEventListener("abort", onAbort, { once: true });
        void gate.then(() => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        });
      });
    } finally {
      this.activity.now -= 1;
    }
  }

  async models(options: { signal?: AbortSignal } = {}): Promise<ModelsAnswer> {
    this.modelsCalls += 1;
    await this.#wait(options.signal);
    if (this.failure) throw this.failure;
    return structuredClone(this.answer);
  }

  async discovery(options: { signal?: AbortSignal } = {}): Promise<DiscoveryAnswer> {
    this.discoveryCalls += 1;
    await this.#wait(options.signal);
    if (this.discoveryFailure) throw this.discoveryFailure;
    return structuredClone(this.discoveryAnswer);
  }
}

/** A gate the test opens by hand. */
export const gate = () => {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
};

const realImmediate = globalThis.setImmediate;
/** Lets every promise that can settle now settle. */
export const settle = async () => {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => realImmediate(resolve));
};

export const targetsOf = (names: readonly string[]): StoreTarget[] =>
  names.map((name) => ({ name, url: `http://${name}:13131`, token: "" }));

const pollers: Poller[] = [];

/** Stops every poller `setup` made (after each test). */
export const stopPollers = async (): Promise<void> => {
  await Promise.all(pollers.splice(0).map((poller) => poller.stop()));
};

export const setup = (
  names: readonly string[] = ["a", "b"],
  options: Partial<PollerOptions> = {},
) => {
  const targets = targetsOf(names);
  const store = new FleetStore(targets);
  const activity = { now: 0, max: 0 };
  const clients = new Map(names.map((name) => [name, new FakeClient(name, activity)]));
  const discovered: string[] = [];
  const poller = new Poller({
    store,
    targets,
    client: (name) => clients.get(name) as FakeClient,
    intervalMs: 1000,
    discoveryIntervalMs: 10_000,
    concurrency: 8,
    unhealthyAfter: 2,
    log: silentLog,
    onDiscovery: (node) => discovered.push(node),
    ...options,
  });
  pollers.push(poller);
  const updates = vi.spyOn(store, "update");
  const client = (name: string) => clients.get(name) as FakeClient;
  const node = (name: string) => {
    const found = store.snapshot.nodes.find((n) => n.name === name);
    if (!found) throw new Error(`no node ${name}`);
    return found;
  };
  return { store, poller, client, node, updates, activity, discovered };
};
