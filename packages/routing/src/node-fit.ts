import type { FleetNode, LabelMap, ModelProfile, NodeDrain } from "@cortex/protocol";
import type { LiveState } from "./types.js";

// Two node properties an operator sets, read by every placement and routing branch: a node's
// labels against a model's `node_selector` (static, like `pinned_on`), and a node's drain
// (cortex's own state: the node takes no new placements or requests while it is taken out).

/** `{gpu: a100, zone: eu}`: a selector as refusals quote it, in the catalogue's own words. */
export const formatSelector = (selector: LabelMap): string =>
  `{${Object.entries(selector)
    .map(([key, value]) => `${key}: ${value}`)
    .join(", ")}}`;

/** `gpu=h100, zone=eu`, or `no labels`: a node's labels as refusals list them. */
export const formatLabels = (labels: LabelMap | undefined): string => {
  const pairs = Object.entries(labels ?? {});
  return pairs.length === 0
    ? "no labels"
    : pairs.map(([key, value]) => `${key}=${value}`).join(", ");
};

/**
 * Whether the node's labels hold every pair of the model's `node_selector` (own properties
 * only: a label named `constructor` or `__proto__` is a label like any other). A node whose
 * labels are unknown (an older neuron, not discovered yet) has none, so a selector keeps the
 * model off it: a selector is a restriction, never a preference.
 */
export const selectorMatches = (
  model: Pick<ModelProfile, "node_selector">,
  node: Pick<FleetNode, "labels">,
): boolean => {
  const selector = model.node_selector;
  if (selector === undefined) return true;
  const labels = node.labels ?? {};
  for (const key of Object.keys(selector))
    if (!Object.hasOwn(labels, key) || labels[key] !== selector[key]) return false;
  return true;
};

/** Why the model's `node_selector` rules the node out, or null when it matches. */
export const selectorMismatch = (
  model: Pick<ModelProfile, "node_selector">,
  node: Pick<FleetNode, "labels">,
): string | null =>
  selectorMatches(model, node)
    ? null
    : `labels (${formatLabels(node.labels)}) do not match node_selector ${formatSelector(model.node_selector ?? {})}`;

/** The node's drain, or undefined while it is in service. */
export const drainOf = (live: LiveState | undefined, node: string): NodeDrain | undefined =>
  live?.nodeDrains?.get(node);

/**
 * Whether the node takes new placements and requests: not draining, not drained. Requests that
 * already hold a slot there finish; that is cortex's bookkeeping, not routing's.
 */
export const inService = (live: LiveState | undefined, node: string): boolean => {
  const drains = live?.nodeDrains;
  return drains === undefined || drains.size === 0 || !drains.has(node);
};
