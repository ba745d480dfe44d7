import type { FleetNode, FleetSnapshot, ModelProfile, NeuronModel } from "@cortex/protocol";
import type { LoadPlan } from "./types.js";

// Cortex changes the fleet itself (loads, unloads, evictions) between polls. These pure
// helpers give it the next snapshot at once, so no request is routed to a model it has just
// evicted or placed onto memory it has just promised to another load.

const replaceNode = (
  snapshot: FleetSnapshot,
  nodeName: string,
  update: (node: FleetNode) => FleetNode,
): FleetSnapshot => {
  let changed = false;
  const nodes = snapshot.nodes.map((node) => {
    if (node.name !== nodeName) return node;
    changed = true;
    return update(node);
  });
  return changed ? { ...snapshot, nodes } : snapshot;
};

/** The node no longer has the model at all (evicted or forgotten). */
export const withoutModel = (
  snapshot: FleetSnapshot,
  nodeName: string,
  modelId: string,
): FleetSnapshot =>
  replaceNode(snapshot, nodeName, (node) => ({
    ...node,
    models: node.models.filter((model) => model.id !== modelId),
  }));

/** Inserts or replaces one model entry on a node. */
export const withModel = (
  snapshot: FleetSnapshot,
  nodeName: string,
  entry: NeuronModel,
): FleetSnapshot =>
  replaceNode(snapshot, nodeName, (node) => ({
    ...node,
    models: [...node.models.filter((model) => model.id !== entry.id), entry],
  }));

/** Changes the status of a model a node already has; unknown models are left alone. */
export const withModelStatus = (
  snapshot: FleetSnapshot,
  nodeName: string,
  modelId: string,
  status: NeuronModel["status"],
  error: string | null = null,
): FleetSnapshot =>
  replaceNode(snapshot, nodeName, (node) => ({
    ...node,
    models: node.models.map((model) =>
      model.id === modelId ? { ...model, status, error } : model,
    ),
  }));

/**
 * The fleet as it will be once the plan runs: its evictions gone and the model `loading` on the
 * chosen devices, holding its memory from this moment.
 */
export const applyLoadPlan = (
  snapshot: FleetSnapshot,
  profile: ModelProfile,
  plan: LoadPlan,
): FleetSnapshot => {
  let next = snapshot;
  for (const eviction of plan.evict) next = withoutModel(next, eviction.node, eviction.model);
  return withModel(next, plan.node, {
    id: profile.id,
    harness: profile.harness,
    status: "loading",
    devices: [...plan.devices],
    vram_mb: profile.vram_mb,
    in_flight: 0,
    queued: 0,
    max_concurrency: profile.max_concurrency,
    last_accessed: null,
    loaded_at: null,
    error: null,
  });
};
