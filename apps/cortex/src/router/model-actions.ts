import { type Catalogue, resolveModelName } from "@cortex/catalogue";
import type {
  ApiLoadAnswer,
  ApiLoadRequest,
  ApiUnloadAnswer,
  ApiUnloadRequest,
  FleetNode,
  FleetSnapshot,
} from "@cortex/protocol";
import { type LoadPlan, withoutModel } from "@cortex/routing";
import { CortexError } from "../errors.js";
import type { FleetStore } from "../fleet/fleet-store.js";
import { fromNeuron, isGone } from "../neurons/neuron-errors.js";
import type { Dispatcher } from "./dispatcher.js";
import type { LoadClient, LoadCoordinator, LoadedModel } from "./load-coordinator.js";
import { type MemoryGate, refusalOf } from "./memory-gate.js";

/** What the actions need of a neuron client. */
export interface ActionClient extends LoadClient {
  logs(id: string): Promise<string>;
}

export interface ModelActionsOptions {
  readonly store: FleetStore;
  readonly catalogue: () => Catalogue;
  readonly dispatcher: Pick<Dispatcher, "decide">;
  readonly loads: LoadCoordinator;
  readonly client: (node: string) => ActionClient;
  /** Stopping a harness can take its grace period and more: unloads get this long. */
  readonly unloadTimeoutMs: number;
  /** Why a model cannot be placed yet (its estimate), when that is why routing refused it. */
  readonly memory?: Pick<MemoryGate, "status">;
  readonly now?: () => number;
}

/** The API's answer for a load the coordinator ran (or joined). */
const answerOf = (loaded: LoadedModel): ApiLoadAnswer => ({
  model: loaded.model,
  node: loaded.node,
  status: "loaded",
  url: loaded.url,
  load_ms: loaded.loadMs,
  already_loaded: loaded.alreadyLoaded,
  evicted: [...loaded.evicted],
});

const nodeUrl = (snapshot: FleetSnapshot, node: string): string =>
  snapshot.nodes.find((entry) => entry.name === node)?.url ?? "";

/** The nodes that have model `id`: only `node` when one is named. */
const holdersOf = (snapshot: FleetSnapshot, id: string, node: string | undefined): FleetNode[] =>
  snapshot.nodes.filter(
    (entry) => (node === undefined || entry.name === node) && entry.models.some((m) => m.id === id),
  );

/**
 * The operator's changes to the fleet (placing a model, removing it) as operations any transport
 * calls; they throw CortexErrors. Every change of cortex's own to the snapshot runs in a
 * `FleetStore.own` scope (here or in the load coordinator), and an unload waits for cortex's own
 * load of that model to finish first: otherwise the load, landing after the unload, would put
 * the model back in the snapshot as loaded while its neuron has none (until the next poll).
 */
export class ModelActions {
  readonly #options: ModelActionsOptions;
  readonly #now: () => number;

  constructor(options: ModelActionsOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Places a model through the catalogue (or on the named node); resolves once it is loaded. */
  async load(request: ApiLoadRequest): Promise<ApiLoadAnswer> {
    const { store, loads, dispatcher } = this.#options;
    const profile = resolveModelName(this.#options.catalogue(), request.model);
    // A load of this model already under way elsewhere is not what was asked for: let it
    // finish, then decide for the named node.
    const other = profile ? loads.runningOn(profile.id) : undefined;
    if (profile && other !== undefined && request.node !== undefined && other !== request.node)
      await loads.running(profile.id)?.catch(() => {});
    const decision = dispatcher.decide(request.model, request.node);
    switch (decision.kind) {
      case "route":
      case "saturated":
      case "draining": {
        const node =
          decision.kind === "route"
            ? decision.node
            : (store.snapshot.nodes.find(
                (entry) =>
                  (request.node === undefined || entry.name === request.node) &&
                  entry.models.some(
                    (m) =>
                      m.id === decision.model && (m.status === "loaded" || m.status === "loading"),
                  ),
              )?.name ?? "");
        return {
          status: "loaded",
          model: decision.model,
          node,
          url: nodeUrl(store.snapshot, node),
          load_ms: 0,
          already_loaded: true,
          evicted: [],
        };
      }
      case "load":
        return answerOf(await loads.load(decision.profile, decision.plan));
      case "swap":
        // Requests wait for busy models to drain; an operator's load does not evict them.
        throw new CortexError(
          "no_capacity",
          `model "${decision.model}" fits on ${decision.node} only once ${decision.blockers.join(", ")} leave, and they are busy; requests for it wait for that, or unload them with force`,
          { retryAfterS: 5 },
        );
      case "lazy":
      case "hold": {
        // Known to a node but not serving (idle-unloaded, loading, recovering): load it there.
        if (!profile) {
          throw new CortexError(
            "invalid_request_error",
            `model "${decision.model}" is not in the catalogue, so cortex cannot load it again on ${decision.node}; load it on the neuron itself`,
            { param: "model" },
          );
        }
        const entry = store.snapshot.nodes
          .find((node) => node.name === decision.node)
          ?.models.find((model) => model.id === decision.model);
        const devices = entry?.devices ?? [];
        const plan: LoadPlan = {
          node: decision.node,
          url: nodeUrl(store.snapshot, decision.node),
          devices,
          tensor_parallel: Math.max(1, devices.length),
          evict: [],
        };
        return answerOf(await (loads.running(profile.id) ?? loads.load(profile, plan)));
      }
      case "reject": {
        // An operator's load does not wait for an estimate: it says so, and is tried again.
        const memory = profile ? this.#options.memory?.status(profile.id) : undefined;
        throw refusalOf(profile?.id ?? request.model, decision, memory, undefined);
      }
    }
  }

  /** Unloads a model from the named node, or from every node that has it. */
  async unload(request: ApiUnloadRequest): Promise<ApiUnloadAnswer> {
    const { store, loads } = this.#options;
    const id = resolveModelName(this.#options.catalogue(), request.model)?.id ?? request.model;
    if (request.node !== undefined && !store.snapshot.nodes.some((n) => n.name === request.node))
      throw new CortexError("not_found", `node "${request.node}" is not in the fleet`, {
        param: "node",
      });
    // Cortex's own load of this model finishes (or fails) first; the unload then acts on what
    // it left.
    await loads.running(id)?.catch(() => {});
    const holders = holdersOf(store.snapshot, id, request.node);
    if (holders.length === 0) {
      throw new CortexError(
        "model_not_found",
        `model "${request.model}" is not on ${request.node ?? "any node"}`,
        { param: "model" },
      );
    }
    const unloaded: string[] = [];
    for (const { name } of holders) {
      await store.own(name, async (apply) => {
        try {
          await this.#options
            .client(name)
            .unload(
              { model_id: id, force: request.force ?? false },
              { timeoutMs: this.#options.unloadTimeoutMs },
            );
        } catch (error) {
          if (!isGone(error)) throw fromNeuron(error, "unload", id, name);
        }
        apply((snapshot) => withoutModel(snapshot, name, id));
      });
      store.emit({
        type: "unloaded",
        at: new Date(this.#now()).toISOString(),
        node: name,
        model: id,
      });
      unloaded.push(name);
    }
    return { model: id, status: "unloaded", nodes: unloaded };
  }

  /** A model's harness output, from its neuron: `node` names it, or the one node that has it. */
  async logs(model: string, node?: string): Promise<string> {
    const id = resolveModelName(this.#options.catalogue(), model)?.id ?? model;
    const holders = holdersOf(this.#options.store.snapshot, id, node);
    if (holders.length === 0)
      throw new CortexError("model_not_found", `model "${id}" is not on ${node ?? "any node"}`);
    if (holders.length > 1)
      throw new CortexError(
        "invalid_request_error",
        `model "${id}" is on ${holders.map((entry) => entry.name).join(", ")}: name one with ?node=`,
        { param: "node" },
      );
    const name = holders[0]?.name ?? "";
    try {
      return await this.#options.client(name).logs(id);
    } catch (error) {
      throw fromNeuron(error, "logs", id, name);
    }
  }
}
