import type { FleetNode, FleetSnapshot, NeuronModel } from "@cortex/protocol";

// Residents as placement should count them: a model that holds more than it was loaded with
// (measured `vram_used_mb` above its `vram_mb`) holds what was measured. A GPU's free memory
// comes with discovery, which may be a minute old; the models' measurements come with every
// poll, so without this a model declared at 10 GB that holds 20 GB would leave room for a
// second model that does not fit beside it.

const views = new WeakMap<FleetSnapshot, FleetSnapshot>();
/** Per node too: an unchanged node keeps its view, and routing's free-memory memo with it. */
const nodeViews = new WeakMap<FleetNode, FleetNode>();

const measured = (model: NeuronModel): NeuronModel =>
  model.vram_used_mb != null && model.vram_used_mb > model.vram_mb
    ? { ...model, vram_mb: model.vram_used_mb }
    : model;

const nodeView = (node: FleetNode): FleetNode => {
  const cached = nodeViews.get(node);
  if (cached !== undefined) return cached;
  let models: NeuronModel[] | undefined;
  node.models.forEach((model, index) => {
    const counted = measured(model);
    if (counted === model) return;
    models ??= [...node.models];
    models[index] = counted;
  });
  const view = models === undefined ? node : { ...node, models };
  nodeViews.set(node, view);
  return view;
};

/**
 * The snapshot with every resident's `vram_mb` at least its measured footprint; the snapshot
 * itself when no model holds more than it was loaded with (the usual case: no copy). Memoised
 * per (immutable) snapshot, so routing's own per-snapshot indexes are built once per view.
 */
export const measuredView = (snapshot: FleetSnapshot): FleetSnapshot => {
  const cached = views.get(snapshot);
  if (cached !== undefined) return cached;
  let nodes: FleetNode[] | undefined;
  snapshot.nodes.forEach((node, index) => {
    const counted = nodeView(node);
    if (counted === node) return;
    nodes ??= [...snapshot.nodes];
    nodes[index] = counted;
  });
  const view = nodes === undefined ? snapshot : { ...snapshot, nodes };
  views.set(snapshot, view);
  return view;
};
