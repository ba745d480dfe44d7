import { type Catalogue, resolveModelName } from "@cortex/catalogue";
import type {
  CortexModel,
  CortexModelList,
  FleetSnapshot,
  ModelProfile,
  ModelStatus,
} from "@cortex/protocol";

// `GET /v1/models`, as a pure function of the snapshot and the catalogue.

type Location = CortexModel["locations"][number];

/** The best status wins: a model loaded anywhere is `loaded`, whatever the other nodes say. */
const STATUS_RANK: Readonly<Record<ModelStatus, number>> = {
  loaded: 5,
  loading: 4,
  recovering: 3,
  unloaded: 2,
  failed: 1,
};

/** Code-unit order, so the list reads the same on every host whatever its locale. */
const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const aggregateStatus = (locations: readonly Location[]): CortexModel["status"] => {
  let best: ModelStatus | undefined;
  for (const { status } of locations) {
    if (best === undefined || STATUS_RANK[status] > STATUS_RANK[best]) best = status;
  }
  return best ?? "available";
};

/** The aliases that really lead to this model (one shadowed by a model id does not). */
const aliasesOf = (catalogue: Catalogue, profile: ModelProfile | undefined): string[] =>
  profile ? profile.aliases.filter((alias) => catalogue.byAlias.get(alias) === profile) : [];

/**
 * Every catalogue model, plus every model a healthy node knows that the catalogue does not
 * (loaded by hand), sorted by id. Status and locations count healthy nodes only, as routing
 * does: a model known only to an unreachable node would answer 404, so it is not listed, and a
 * catalogue model present on no healthy node is `available` (it would be cold-loaded).
 * `createdS` is the Unix time in seconds every entry reports as `created`; `waiting` counts the
 * requests cortex holds for each model (for a slot, a turn or a swap).
 */
export const listModels = (
  snapshot: FleetSnapshot,
  catalogue: Catalogue,
  createdS: number,
  waiting: ReadonlyMap<string, number> = new Map(),
): CortexModelList => {
  const locations = new Map<string, Location[]>();
  for (const profile of catalogue.models) locations.set(profile.id, []);
  for (const node of snapshot.nodes) {
    if (!node.healthy) continue;
    for (const model of node.models) {
      const found = locations.get(model.id);
      const location = { node: node.name, status: model.status };
      if (found) found.push(location);
      else locations.set(model.id, [location]);
    }
  }

  const created = Math.max(0, Math.floor(createdS));
  const data = [...locations.keys()].sort(byCodeUnits).map((id): CortexModel => {
    const at = (locations.get(id) ?? []).sort((a, b) => byCodeUnits(a.node, b.node));
    return {
      id,
      object: "model",
      created,
      owned_by: "cortex",
      status: aggregateStatus(at),
      locations: at,
      aliases: aliasesOf(catalogue, catalogue.byId.get(id)),
      waiting: waiting.get(id) ?? 0,
    };
  });
  return { object: "list", data };
};

/**
 * `GET /v1/models/{id}`: the entry `listModels` has for `requested`, found by id or by alias (an
 * alias answers its canonical model, as routing would resolve it); undefined when none.
 */
export const findModel = (
  snapshot: FleetSnapshot,
  catalogue: Catalogue,
  createdS: number,
  waiting: ReadonlyMap<string, number>,
  requested: string,
): CortexModel | undefined => {
  const id = resolveModelName(catalogue, requested)?.id ?? requested;
  return listModels(snapshot, catalogue, createdS, waiting).data.find((model) => model.id === id);
};
