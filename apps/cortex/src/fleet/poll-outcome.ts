import type { DiscoveryAnswer, FleetNode, ModelsAnswer, NeuronModel } from "@cortex/protocol";
import {
  reuse,
  sameDevice,
  sameHarness,
  sameModel,
  sameNodeInfo,
  sameSources,
} from "./answer-reuse.js";

// What one poll of one node brought back, and the node it makes: the poller's pure half.

/** One node's answers in one tick. */
export interface Outcome {
  /** The node's generation when `/models` was sent; a different one at apply time: stale. */
  readonly generation: number;
  /** The node's suspicion count when `/models` was sent (see `Poller.suspect`). */
  readonly suspicion: number;
  /** The node's live news so far when `/models` was sent (see `LiveMarks`). */
  readonly liveMark: number;
  /** null: `/models` failed (`error` says why). */
  readonly models: ModelsAnswer | null;
  /** null: not asked this tick, or failed (`discoveryError` says why). */
  readonly discovery: DiscoveryAnswer | null;
  readonly error: string | null;
  readonly discoveryError: string | null;
  /** `/models` got no HTTP answer at all (refused, reset, timed out). */
  readonly unreachable: boolean;
}

/** What the node's outcome is read against, as things stand when it is applied. */
export interface OutcomeContext {
  readonly at: string;
  readonly unhealthyAfter: number;
  /** Nothing of cortex's own changed the node's models since `/models` was sent. */
  readonly fresh: boolean;
  /** The node's suspicion count now: an answer sent before the last suspicion heals nothing. */
  readonly suspicion: number;
  /** The answer with the models that live news touched since it was sent taken from `current`. */
  readonly merge: (answer: NeuronModel[], current: NeuronModel[]) => NeuronModel[];
}

/**
 * The node after `outcome`, and whether its `/models` answer went into it (`applied`); the same
 * node object when nothing changed, and the previous objects of unchanged answers.
 */
export const nextNode = (
  node: FleetNode,
  outcome: Outcome,
  context: OutcomeContext,
): { readonly node: FleetNode; readonly applied: boolean } => {
  const { at } = context;
  const discovery = outcome.discovery;
  const info =
    discovery === null
      ? node.node
      : node.node !== null && sameNodeInfo(node.node, discovery.node)
        ? node.node
        : discovery.node;
  if (outcome.models === null || info === null) {
    // A node cortex has never discovered is not usable even if /models answers: without
    // its devices and harnesses nothing can be placed on it.
    const failures = node.consecutive_failures + 1;
    return {
      applied: false,
      node: {
        ...node,
        healthy: node.healthy && failures < context.unhealthyAfter,
        consecutive_failures: failures,
        last_poll_at: at,
        error: outcome.error ?? `discovery failed: ${outcome.discoveryError ?? "no answer"}`,
      },
    };
  }
  // Cortex changed this node's models after /models was sent: its own view is newer.
  // While cortex is carrying out a plan there (evictions, a load), the neuron's answer may
  // predate any part of it: cortex's view stays until the plan is done.
  const applied = context.fresh;
  const models = applied
    ? reuse(node.models, context.merge(outcome.models, node.models), sameModel)
    : node.models;
  const devices = discovery ? reuse(node.devices, discovery.devices, sameDevice) : node.devices;
  const harnesses = discovery
    ? reuse(node.harnesses, discovery.harnesses, sameHarness)
    : node.harnesses;
  // The weights on the node's disk, for placement; an older neuron's answer has none.
  const sources =
    discovery === null || sameSources(node.sources, discovery.sources)
      ? node.sources
      : discovery.sources;
  // neuron.yaml `labels`, for node selectors (a few short pairs): unchanged keeps the object.
  const labels =
    discovery?.labels === undefined ||
    JSON.stringify(node.labels) === JSON.stringify(discovery.labels)
      ? node.labels
      : discovery.labels;
  // An answer that left before the node was last suspected says nothing about the failure
  // that suspicion saw: its models count, the node's health waits for a newer poll.
  if (!node.healthy && outcome.suspicion !== context.suspicion) {
    return {
      applied,
      node: { ...node, last_poll_at: at, node: info, devices, harnesses, models, sources, labels },
    };
  }
  if (
    node.healthy &&
    node.consecutive_failures === 0 &&
    node.error === null &&
    node.last_poll_at === at &&
    node.last_ok_at === at &&
    node.node === info &&
    node.models === models &&
    node.devices === devices &&
    node.harnesses === harnesses &&
    node.sources === sources &&
    node.labels === labels
  )
    return { applied, node };
  return {
    applied,
    node: {
      ...node,
      healthy: true,
      consecutive_failures: 0,
      last_poll_at: at,
      last_ok_at: at,
      error: null,
      node: info,
      devices,
      harnesses,
      models,
      sources,
      labels,
    },
  };
};
