import type { FleetSnapshot, ModelProfile, ModelStatus, NeuronModel } from "@cortex/protocol";

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
  readonly profile: ModelProfile | null;
  readonly placements: readonly ModelPlacement[];
  readonly status: OverallStatus;
  /** The most recent use on any node. */
  readonly lastUsed: string | null;
  readonly inFlight: number;
  readonly queued: number;
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
  fleet: FleetSnapshot | null,
  catalogue: readonly ModelProfile[],
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
      inFlight: here.reduce((sum, p) => sum + p.model.in_flight, 0),
      queued: here.reduce((sum, p) => sum + p.model.queued, 0),
    };
  });
};
