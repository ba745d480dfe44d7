import {
  type FleetEvent,
  type FleetNode,
  type LoadAnswer,
  type LoadProgress,
  type LoadRequest,
  type ModelProfile,
  ModelProfile as ModelProfileSchema,
  type NeuronModel,
  type UnloadAnswer,
} from "@cortex/protocol";
import type { LoadPlan } from "@cortex/routing";
import { gpuDevice, neuronModel } from "@cortex/testkit";
import { FleetStore } from "../fleet/fleet-store.js";
import type { ActionClient } from "./model-actions.js";

// Fakes for the router's state machines: a fleet store with polled nodes, catalogue profiles,
// and a neuron whose every call waits until the test answers it.

export const profile = (id: string, vramMb = 4000): ModelProfile =>
  ModelProfileSchema.parse({ id, harness: "llamacpp", source: `${id}.gguf`, vram_mb: vramMb });

export const planOn = (node: string, evict: LoadPlan["evict"] = []): LoadPlan => ({
  node,
  url: `http://${node}:13131`,
  devices: [0],
  tensor_parallel: 1,
  evict,
});

const polledNode = (name: string, models: NeuronModel[]): FleetNode => ({
  name,
  url: `http://${name}:13131`,
  healthy: true,
  consecutive_failures: 0,
  last_poll_at: null,
  last_ok_at: null,
  error: null,
  node: null,
  devices: [gpuDevice(0, 24_000)],
  harnesses: [],
  models,
});

/** A store whose nodes have been polled once, with these models resident. */
export const storeWith = (nodes: Record<string, NeuronModel[]>, now = () => 0): FleetStore => {
  const store = new FleetStore(
    Object.keys(nodes).map((name) => ({ name, url: `http://${name}:13131`, token: "" })),
    now,
  );
  store.update((current) => ({
    ...current,
    nodes: Object.entries(nodes).map(([name, models]) => polledNode(name, models)),
  }));
  return store;
};

export const resident = (id: string, status: NeuronModel["status"] = "loaded"): NeuronModel =>
  neuronModel(id, { status, devices: [0], vram_mb: 4000 });

export const modelsOn = (store: FleetStore, node: string): Record<string, string> =>
  Object.fromEntries(
    (store.snapshot.nodes.find((entry) => entry.name === node)?.models ?? []).map((model) => [
      model.id,
      model.status,
    ]),
  );

/** One call to the fake neuron, waiting for the test to answer it. */
export interface Call<Request, Answer> {
  readonly node: string;
  readonly request: Request;
  readonly onProgress?: (progress: LoadProgress) => void;
  readonly resolve: (answer: Answer) => void;
  readonly reject: (error: unknown) => void;
}

/** A neuron error as the client raises it: classified by its code. */
export const neuronError = (code: string, message = code) =>
  Object.assign(new Error(message), { code });

/**
 * The neurons of a fleet, as one fake: every call is recorded and stays pending until the test
 * answers it, unless an automatic answer is set.
 */
export class FakeNeurons {
  readonly loads: Call<LoadRequest, LoadAnswer>[] = [];
  readonly unloads: Call<{ model_id: string; force?: boolean }, UnloadAnswer>[] = [];
  /** Answers loads at once when set. */
  autoLoad = false;
  /** Answers unloads at once when set: `true` succeeds, an error rejects. */
  autoUnload: boolean | Error = false;
  logs: string | Error = "";

  client = (node: string): ActionClient => ({
    load: (request, options) =>
      new Promise<LoadAnswer>((resolve, reject) => {
        this.loads.push({ node, request, resolve, reject, ...options });
        if (this.autoLoad) resolve(loadAnswer(request.model_id, node));
      }),
    unload: (request) =>
      new Promise<UnloadAnswer>((resolve, reject) => {
        this.unloads.push({ node, request, resolve, reject });
        if (this.autoUnload instanceof Error) reject(this.autoUnload);
        else if (this.autoUnload) resolve({ status: "unloaded" });
      }),
    logs: async () => {
      if (this.logs instanceof Error) throw this.logs;
      return this.logs;
    },
  });
}

export const loadAnswer = (model: string, node: string): LoadAnswer => ({
  id: model,
  status: "loaded",
  url: `http://${node}:13131`,
  load_ms: 5,
  already_loaded: false,
});

/** Lets every promise that can settle now settle. */
export const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

/** A fleet of polled nodes with these models, its neurons as one fake, and every event it emits. */
export const fakeFleet = (
  models: Record<string, NeuronModel[]> = { a: [] },
  now?: () => number,
): { store: FleetStore; neurons: FakeNeurons; events: FleetEvent[] } => {
  const store = storeWith(models, now);
  const neurons = new FakeNeurons();
  const events: FleetEvent[] = [];
  store.subscribe((event) => events.push(event));
  return { store, neurons, events };
};
