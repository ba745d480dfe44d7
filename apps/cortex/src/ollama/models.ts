import { type Catalogue, resolveModelName } from "@cortex/catalogue";
import type { FleetSnapshot, ModelProfile, NeuronModel } from "@cortex/protocol";
import { CortexError } from "../errors.js";

// `GET /api/tags`, `GET /api/ps` and `POST /api/show` as pure functions of the fleet snapshot
// and the catalogue, in Ollama's shapes. Only what cortex knows is said: a fact it does not
// have (a digest, a parameter count, a family) is "" or 0, never made up.

const MIB = 2 ** 20;

/** Code-unit order, so lists read the same on every host whatever its locale. */
const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Ollama's `details` of a model. */
export interface OllamaDetails {
  parent_model: string;
  format: string;
  family: string;
  families: string[];
  parameter_size: string;
  quantization_level: string;
}

/** One model as cortex knows it: its catalogue entry and its copies on healthy nodes. */
interface Known {
  readonly id: string;
  readonly profile: ModelProfile | undefined;
  readonly copies: readonly NeuronModel[];
}

/**
 * Every catalogue model and every model a healthy node has (as `/v1/models` lists them), by id:
 * a model known only to an unreachable node would not be served, so it is not listed.
 */
const knownModels = (snapshot: FleetSnapshot, catalogue: Catalogue): Known[] => {
  const copies = new Map<string, NeuronModel[]>();
  for (const profile of catalogue.models) copies.set(profile.id, []);
  for (const node of snapshot.nodes) {
    if (!node.healthy) continue;
    for (const model of node.models) {
      const found = copies.get(model.id);
      if (found) found.push(model);
      else copies.set(model.id, [model]);
    }
  }
  return [...copies.keys()].sort(byCodeUnits).map((id) => ({
    id,
    profile: catalogue.byId.get(id),
    copies: copies.get(id) ?? [],
  }));
};

/** The model a client's name means: an id or alias, else the name without `:latest`. */
const findKnown = (
  snapshot: FleetSnapshot,
  catalogue: Catalogue,
  name: string,
): Known | undefined => {
  const models = knownModels(snapshot, catalogue);
  const find = (candidate: string) => {
    const id = resolveModelName(catalogue, candidate)?.id ?? candidate;
    return models.find((model) => model.id === id);
  };
  return find(name) ?? (name.endsWith(":latest") ? find(name.slice(0, -7)) : undefined);
};

/** Whether cortex can serve the model a client's name means (see findKnown). */
export const isKnownModel = (
  snapshot: FleetSnapshot,
  catalogue: Catalogue,
  name: string,
): boolean => findKnown(snapshot, catalogue, name) !== undefined;

/**
 * The name to send on for a client's model name: Ollama's clients add `:latest` to names with
 * no tag, so `name:latest` means `name` when only that is known. Anything else goes on as
 * given (cortex's endpoint resolves aliases, and answers 404 for unknown models).
 */
export const resolveOllamaName = (
  snapshot: FleetSnapshot,
  catalogue: Catalogue,
  name: string,
): string => {
  if (!name.endsWith(":latest")) return name;
  const known = findKnown(snapshot, catalogue, name);
  return known !== undefined && resolveModelName(catalogue, name) === undefined && known.id !== name
    ? known.id
    : name;
};

const detailsOf = (model: Known): OllamaDetails => ({
  parent_model: "",
  // A GGUF file is all llama.cpp loads; other sources do not say.
  format: model.profile && /\.gguf$/i.test(model.profile.source) ? "gguf" : "",
  family: "",
  families: [],
  parameter_size: "",
  quantization_level: model.profile?.quant ?? "",
});

/** The memory a model takes: the catalogue's `vram_mb`, else the largest copy's. */
const sizeOf = (model: Known): number =>
  (model.profile?.vram_mb ?? Math.max(0, ...model.copies.map((copy) => copy.vram_mb))) * MIB;

/** When it last changed as far as cortex knows: its newest load, else cortex's start. */
const modifiedAt = (model: Known, startedAt: string): string => {
  const loads = model.copies
    .map((copy) => copy.loaded_at)
    .filter((at): at is string => at !== null)
    .sort(byCodeUnits);
  return loads.at(-1) ?? startedAt;
};

/** `GET /api/tags`: every model cortex can serve. `startedAt`: cortex's start (ISO). */
export const ollamaTags = (snapshot: FleetSnapshot, catalogue: Catalogue, startedAt: string) => ({
  models: knownModels(snapshot, catalogue).map((model) => ({
    name: model.id,
    model: model.id,
    modified_at: modifiedAt(model, startedAt),
    size: sizeOf(model),
    digest: "",
    details: detailsOf(model),
  })),
});

/**
 * When a loaded copy will be unloaded for idleness: its last use plus the catalogue's
 * `idle_ttl_s`; undefined when that is not known (no TTL in the catalogue: the neuron's
 * default applies; `0`: never; `min_replicas`: cortex keeps copies loaded).
 */
const expiresAt = (model: Known, copies: readonly NeuronModel[]): string | undefined => {
  const ttlS = model.profile?.idle_ttl_s;
  if (!ttlS || (model.profile?.min_replicas ?? 0) > 0) return undefined;
  const last = copies
    .map((copy) => Date.parse(copy.last_accessed ?? copy.loaded_at ?? ""))
    .filter(Number.isFinite);
  return last.length === 0 ? undefined : new Date(Math.max(...last) + ttlS * 1000).toISOString();
};

/**
 * `GET /api/ps`: the models loaded now, one entry per model with the memory of all its loaded
 * copies (`size_vram`: the copies on GPUs).
 */
export const ollamaPs = (snapshot: FleetSnapshot, catalogue: Catalogue) => ({
  models: knownModels(snapshot, catalogue).flatMap((model) => {
    const loaded = model.copies.filter((copy) => copy.status === "loaded");
    if (loaded.length === 0) return [];
    const bytes = (copies: readonly NeuronModel[]) =>
      copies.reduce((sum, copy) => sum + copy.vram_mb, 0) * MIB;
    const expires = expiresAt(model, loaded);
    const contextLength = model.profile?.context_length;
    return [
      {
        name: model.id,
        model: model.id,
        size: bytes(loaded),
        size_vram: bytes(loaded.filter((copy) => copy.devices.length > 0)),
        digest: "",
        details: detailsOf(model),
        ...(expires === undefined ? {} : { expires_at: expires }),
        ...(contextLength === undefined ? {} : { context_length: contextLength }),
      },
    ];
  }),
});

/** Ollama's capabilities from the catalogue's: "completion" for chat or completions. */
const capabilitiesOf = (model: Known): string[] => {
  const given = model.profile?.capabilities ?? ["chat", "completions"];
  return [
    ...(given.includes("chat") || given.includes("completions") ? ["completion"] : []),
    ...(given.includes("embeddings") ? ["embedding"] : []),
  ];
};

/**
 * `POST /api/show`: what cortex knows of the model `name` (an id, an alias, or either with
 * `:latest`); 404 `model_not_found` for a model it cannot serve. The context length the
 * catalogue starts it with is said as Ollama's Modelfile would: `num_ctx <n>`.
 */
export const ollamaShow = (
  snapshot: FleetSnapshot,
  catalogue: Catalogue,
  name: string,
  startedAt: string,
) => {
  const model = findKnown(snapshot, catalogue, name);
  if (!model)
    throw new CortexError("model_not_found", `model "${name}" not found`, { param: "model" });
  const contextLength = model.profile?.context_length;
  return {
    license: "",
    modelfile: "",
    parameters: contextLength === undefined ? "" : `num_ctx ${contextLength}`,
    template: "",
    system: "",
    details: detailsOf(model),
    model_info: {},
    capabilities: capabilitiesOf(model),
    modified_at: modifiedAt(model, startedAt),
  };
};
