import type { CatalogueEntry, ModelProfile } from "@cortex/protocol";

// Pure catalogue rules: no I/O, so the routing engine can use them on its hot path.

/**
 * Models by id and alias. Routing reads a catalogue of `ModelProfile`s (the default), each with
 * the memory figure it is placed by; the loader reads the files into one of `CatalogueEntry`s,
 * as written (`vram_mb` optional), from which cortex builds the former.
 */
export interface Catalogue<P extends CatalogueEntry = ModelProfile> {
  readonly models: readonly P[];
  readonly byId: ReadonlyMap<string, P>;
  /** Alias → profile. Never contains a key that is also a model id. */
  readonly byAlias: ReadonlyMap<string, P>;
}

/**
 * Builds the lookup maps. The caller has validated uniqueness (see `checkCatalogue` in the
 * loader); a later duplicate would silently win, so do not call this on unchecked input.
 */
export const createCatalogue = <P extends CatalogueEntry = ModelProfile>(
  models: readonly P[],
): Catalogue<P> => {
  const byId = new Map<string, P>();
  const byAlias = new Map<string, P>();
  for (const model of models) byId.set(model.id, model);
  for (const model of models) {
    for (const alias of model.aliases) if (!byId.has(alias)) byAlias.set(alias, model);
  }
  return { models, byId, byAlias };
};

export const EMPTY_CATALOGUE: Catalogue = createCatalogue<ModelProfile>([]);

/** A name a client sent → its profile: the id itself first, then an alias. */
export const resolveModelName = <P extends CatalogueEntry>(
  catalogue: Catalogue<P>,
  name: string,
): P | undefined => catalogue.byId.get(name) ?? catalogue.byAlias.get(name);

/** The parts of a node feasibility looks at: static facts, never live figures. */
export interface NodeFacts {
  readonly name: string;
  readonly devices: readonly { readonly index: number; readonly vram_total_mb: number }[];
  /** Harnesses the node has configured; when given, the model's harness must be among them. */
  readonly harnesses?: readonly { readonly name: string }[];
}

/** Devices big enough to hold one share of the model, by total (not free) memory. */
export const eligibleDevices = <D extends { readonly vram_total_mb: number }>(
  model: ModelProfile,
  devices: readonly D[],
): D[] => devices.filter((device) => device.vram_total_mb >= model.min_device_vram_mb);

/**
 * Why a model can never run on a node, or null when it can. Feasibility is static: it asks
 * whether the node could host the model at all, not whether it has room right now.
 */
export const infeasibility = (model: ModelProfile, node: NodeFacts): string | null => {
  if (model.pinned_on.length > 0 && !model.pinned_on.includes(node.name)) {
    return `pinned to ${model.pinned_on.join(", ")}`;
  }
  if (node.harnesses && !node.harnesses.some((harness) => harness.name === model.harness)) {
    return `node has no "${model.harness}" harness`;
  }
  if (model.runs_on === "cpu") return null;
  const eligible = eligibleDevices(model, node.devices).length;
  if (eligible < model.min_devices) {
    return `needs ${model.min_devices} device(s) with ≥ ${model.min_device_vram_mb} MB each, node has ${eligible}`;
  }
  return null;
};

export const isFeasibleOn = (model: ModelProfile, node: NodeFacts): boolean =>
  infeasibility(model, node) === null;

/** Pinned nodes are preferred when placing, and are the only allowed ones. */
export const isPinnedOn = (model: ModelProfile, nodeName: string): boolean =>
  model.pinned_on.includes(nodeName);
