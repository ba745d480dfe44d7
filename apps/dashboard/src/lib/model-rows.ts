import type {
  CatalogueReportModel,
  FleetNode,
  FleetSnapshot,
  ModelStatus,
  NeuronModel,
  NodeDrain,
} from "@cortex/protocol";
import { formatAgo } from "./format.js";

// The Models view's rows: every catalogue model and everything resident anywhere, with its
// state on each node. Pure over the snapshot and the catalogue.

export type OverallStatus = ModelStatus | "available";

export interface ModelPlacement {
  readonly node: string;
  readonly healthy: boolean;
  readonly model: NeuronModel;
}

export interface ModelRow {
  readonly id: string;
  /** Null for a model loaded by hand on a neuron (cortex cannot load it again). */
  readonly profile: CatalogueReportModel | null;
  readonly placements: readonly ModelPlacement[];
  readonly status: OverallStatus;
  /**
   * The most recent use on any node. A neuron counts uses per residency: a model unloaded and
   * loaded again starts over with none, so this says nothing about uses before its last load.
   */
  readonly lastUsed: string | null;
  /** The most recent load that finished on any node (null while it loads, or resident nowhere). */
  readonly loadedAt: string | null;
  readonly inFlight: number;
  readonly queued: number;
  /** Requests cortex itself holds for the model (for a slot, a turn or a swap). */
  readonly waiting: number;
}

/** Which status a row shows when its nodes disagree: the most useful one first. */
const PRECEDENCE: readonly ModelStatus[] = [
  "loaded",
  "loading",
  "recovering",
  "unloaded",
  "failed",
];

export const overallStatus = (placements: readonly ModelPlacement[]): OverallStatus =>
  PRECEDENCE.find((status) => placements.some((p) => p.model.status === status)) ?? "available";

const latest = (a: string | null, b: string | null): string | null =>
  a === null ? b : b === null ? a : Date.parse(a) >= Date.parse(b) ? a : b;

export const modelRows = (
  fleet: (FleetSnapshot & { readonly waiting?: Readonly<Record<string, number>> }) | null,
  catalogue: readonly CatalogueReportModel[],
): ModelRow[] => {
  const placements = new Map<string, ModelPlacement[]>();
  for (const node of fleet?.nodes ?? []) {
    for (const model of node.models) {
      const list = placements.get(model.id) ?? [];
      list.push({ node: node.name, healthy: node.healthy, model });
      placements.set(model.id, list);
    }
  }
  const profiles = new Map(catalogue.map((profile) => [profile.id, profile]));
  const ids = [...new Set([...profiles.keys(), ...placements.keys()])].sort((a, b) =>
    a.localeCompare(b),
  );
  return ids.map((id) => {
    const here = (placements.get(id) ?? []).sort((a, b) => a.node.localeCompare(b.node));
    return {
      id,
      profile: profiles.get(id) ?? null,
      placements: here,
      status: overallStatus(here),
      lastUsed: here.reduce<string | null>((at, p) => latest(at, p.model.last_accessed), null),
      loadedAt: here.reduce<string | null>((at, p) => latest(at, p.model.loaded_at), null),
      inFlight: here.reduce((sum, p) => sum + p.model.in_flight, 0),
      queued: here.reduce((sum, p) => sum + p.model.queued, 0),
      waiting: fleet?.waiting && Object.hasOwn(fleet.waiting, id) ? (fleet.waiting[id] ?? 0) : 0,
    };
  });
};

/**
 * The "Last used" cell. The neuron's `last_accessed` starts over with every load, so a model
 * without one has not been used *since it was loaded*, which is what it says (not "never":
 * it may well have served requests before an unload or an eviction).
 */
export const lastUsedText = (row: ModelRow, now: number): string => {
  if (row.lastUsed !== null) return formatAgo(row.lastUsed, now);
  if (row.placements.length === 0) return "not resident";
  if (row.loadedAt === null) return "not yet (loading)";
  return `not since its load ${formatAgo(row.loadedAt, now)}`;
};

/** Where a model is, or is about to be, resident: loading it there again does nothing. */
const RESIDENT: ReadonlySet<ModelStatus> = new Set(["loaded", "loading", "recovering"]);

export interface LoadTarget {
  /** A node's name, or null for "anywhere" (cortex places it). */
  readonly node: string | null;
  /** Why it cannot be chosen, or null when it can. */
  readonly disabled: string | null;
}

/**
 * The choices of the Load dialog: "anywhere" and every node, each with why it is disabled: the
 * node is unhealthy, outside the model's `pinned_on`, or already has the model loaded (or
 * loading). "Anywhere" is disabled once the model is resident somewhere, as cortex would only
 * answer that it already is. Pure over the row, its profile and the snapshot's nodes.
 */
export const loadTargets = (
  row: ModelRow,
  nodes: readonly (FleetNode & { readonly drain?: NodeDrain | null })[],
): readonly LoadTarget[] => {
  const pinned = row.profile?.pinned_on ?? [];
  const selector = Object.entries(row.profile?.node_selector ?? {});
  // As cortex matches them: every pair of the selector among the node's own labels.
  const selected = (labels: FleetNode["labels"]) =>
    selector.every(
      ([key, value]) => labels !== undefined && Object.hasOwn(labels, key) && labels[key] === value,
    );
  const residentOn = (name: string) =>
    row.placements.find((p) => p.node === name && RESIDENT.has(p.model.status));
  const anywhere = row.placements.filter((p) => RESIDENT.has(p.model.status));
  return [
    {
      node: null,
      disabled:
        anywhere.length > 0
          ? `already ${anywhere[0]?.model.status} on ${anywhere.map((p) => p.node).join(", ")}`
          : null,
    },
    ...nodes.map((node): LoadTarget => {
      const here = residentOn(node.name);
      return {
        node: node.name,
        disabled:
          here !== undefined
            ? `already ${here.model.status}`
            : !node.healthy
              ? "unhealthy"
              : (node.drain ?? null) !== null
                ? `${node.drain}`
                : pinned.length > 0 && !pinned.includes(node.name)
                  ? "not in pinned_on"
                  : !selected(node.labels)
                    ? "labels do not match node_selector"
                    : null,
      };
    }),
  ];
};
