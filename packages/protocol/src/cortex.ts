import { z } from "zod";
import { CatalogueReport, LabelMap } from "./catalogue.js";
import { HttpUrl, IsoTime, ModelAlias, ModelId, NodeName, NonNegativeInt } from "./common.js";
import { Device, HarnessInfo, HeldSources, ModelStatus, NeuronModel, NodeInfo } from "./neuron.js";

/** What cortex knows about one neuron: the last good poll plus its health bookkeeping. */
export const FleetNode = z.object({
  name: NodeName,
  /** The base URL cortex uses for this neuron (its host replaces loopback hosts). */
  url: z.string(),
  healthy: z.boolean(),
  /** cortex.yaml's `priority` of the node: higher is preferred (owned GPUs before rented). */
  priority: z.int().optional(),
  consecutive_failures: NonNegativeInt,
  last_poll_at: IsoTime.nullable(),
  last_ok_at: IsoTime.nullable(),
  error: z.string().nullable(),
  node: NodeInfo.nullable(),
  devices: z.array(Device),
  harnesses: z.array(HarnessInfo),
  models: z.array(NeuronModel),
  /**
   * The weights the node holds on disk, from its last discovery; absent while unknown (never
   * discovered, or an older neuron that does not report them): placement then treats the node
   * as it did before weights were reported.
   */
  sources: HeldSources.optional(),
  /**
   * neuron.yaml `labels` from the node's last discovery, which a catalogue `node_selector`
   * matches; absent while unknown (never discovered, or an older neuron): no labels.
   */
  labels: LabelMap.optional(),
});
export type FleetNode = z.infer<typeof FleetNode>;

/** `GET /api/fleet`; also the immutable snapshot routing decides on. */
export const FleetSnapshot = z.object({
  taken_at: IsoTime,
  nodes: z.array(FleetNode),
});
export type FleetSnapshot = z.infer<typeof FleetSnapshot>;

/**
 * A node taken out for maintenance (`POST /api/nodes/{name}/drain`): `draining` takes no new
 * placements or requests while its in-flight ones finish and its models unload; `drained` once
 * nothing is resident. Cortex's own state, kept in its database, not the neuron's.
 */
export const NodeDrain = z.enum(["draining", "drained"]);
export type NodeDrain = z.infer<typeof NodeDrain>;

/**
 * How a node came into the fleet: `static` from cortex.yaml's `neurons:`, `joined` by calling
 * `POST /api/neurons/join` (kept in cortex's database until `DELETE /api/neurons/{name}`).
 */
export const NodeOrigin = z.enum(["static", "joined"]);
export type NodeOrigin = z.infer<typeof NodeOrigin>;

/** A node of `GET /api/fleet`: the snapshot's, with its drain (null: in service) and origin. */
export const FleetAnswerNode = FleetNode.extend({
  drain: NodeDrain.nullable().default(null),
  origin: NodeOrigin.default("static"),
});
export type FleetAnswerNode = z.infer<typeof FleetAnswerNode>;

/** `GET /api/fleet`: the snapshot, and the requests cortex holds per model (slot, turn, swap). */
export const FleetAnswer = FleetSnapshot.extend({
  nodes: z.array(FleetAnswerNode),
  waiting: z.record(ModelId, NonNegativeInt).default({}),
});
export type FleetAnswer = z.infer<typeof FleetAnswer>;

/** `POST /api/nodes/{name}/drain` and `/resume`: the node's drain now, and since when. */
export const ApiNodeDrainAnswer = z.object({
  node: NodeName,
  drain: NodeDrain.nullable(),
  since: IsoTime.nullable(),
});
export type ApiNodeDrainAnswer = z.infer<typeof ApiNodeDrainAnswer>;

/**
 * `POST /api/neurons/join` (bearer: one of cortex.yaml's `join_tokens`): a neuron adds itself,
 * or updates its URL and token, under its name. `token` is the neuron's own, which cortex
 * sends on every call to it (kept in cortex's database, never shown by any answer).
 */
export const ApiJoinRequest = z.strictObject({
  name: NodeName,
  url: HttpUrl.max(2048),
  token: z
    .string()
    .max(4096)
    .refine((value) => value === value.trim(), "must not start or end with whitespace")
    .default(""),
});
export type ApiJoinRequest = z.infer<typeof ApiJoinRequest>;

/** The answer to a join: the node is in the fleet and was polled at once. */
export const ApiJoinAnswer = z.object({ name: NodeName, polled: z.literal(true) });
export type ApiJoinAnswer = z.infer<typeof ApiJoinAnswer>;

/** `DELETE /api/neurons/{name}`: the joined node is forgotten. */
export const ApiNodeRemoveAnswer = z.object({ name: NodeName, removed: z.literal(true) });
export type ApiNodeRemoveAnswer = z.infer<typeof ApiNodeRemoveAnswer>;

export const ApiLoadRequest = z.strictObject({
  model: ModelAlias,
  node: NodeName.optional(),
});
export type ApiLoadRequest = z.infer<typeof ApiLoadRequest>;

export const Eviction = z.object({ node: NodeName, model: ModelId });
export type Eviction = z.infer<typeof Eviction>;

export const ApiLoadAnswer = z.object({
  model: ModelId,
  node: NodeName,
  status: z.literal("loaded"),
  url: z.string(),
  load_ms: z.number().nonnegative(),
  already_loaded: z.boolean(),
  evicted: z.array(Eviction),
});
export type ApiLoadAnswer = z.infer<typeof ApiLoadAnswer>;

export const ApiUnloadRequest = z.strictObject({
  model: ModelAlias,
  node: NodeName.optional(),
  force: z.boolean().optional(),
});
export type ApiUnloadRequest = z.infer<typeof ApiUnloadRequest>;

export const ApiUnloadAnswer = z.object({
  model: ModelId,
  status: z.literal("unloaded"),
  nodes: z.array(NodeName),
});
export type ApiUnloadAnswer = z.infer<typeof ApiUnloadAnswer>;

export const ModelLocation = z.object({
  node: NodeName,
  status: ModelStatus,
});

/** `GET /v1/models` entry: OpenAI's Model object plus where the model is and how. */
export const CortexModel = z.object({
  id: ModelId,
  object: z.literal("model"),
  created: NonNegativeInt,
  owned_by: z.string(),
  status: z.enum(["loaded", "loading", "unloaded", "recovering", "failed", "available"]),
  locations: z.array(ModelLocation),
  aliases: z.array(ModelAlias),
  /** Requests cortex holds for the model now: for a slot, a turn or a swap. */
  waiting: NonNegativeInt,
});
export type CortexModel = z.infer<typeof CortexModel>;

export const CortexModelList = z.object({
  object: z.literal("list"),
  data: z.array(CortexModel),
});
export type CortexModelList = z.infer<typeof CortexModelList>;

/** `GET /api/events`: one JSON object per SSE `data:` line, tagged by `type`. */
export const FleetEvent = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("node_health"),
    at: IsoTime,
    node: NodeName,
    healthy: z.boolean(),
    error: z.string().nullable(),
  }),
  z.object({
    type: z.literal("model_state"),
    at: IsoTime,
    node: NodeName,
    model: ModelId,
    from: ModelStatus.nullable(),
    to: ModelStatus.nullable(),
  }),
  z.object({
    type: z.literal("load_started"),
    at: IsoTime,
    node: NodeName,
    model: ModelId,
    evicting: z.array(Eviction),
  }),
  z.object({
    type: z.literal("load_progress"),
    at: IsoTime,
    node: NodeName,
    model: ModelId,
    phase: z.string(),
    bytes: NonNegativeInt.nullable(),
    total: NonNegativeInt.nullable(),
  }),
  z.object({
    type: z.literal("load_finished"),
    at: IsoTime,
    node: NodeName,
    model: ModelId,
    load_ms: z.number().nonnegative(),
  }),
  z.object({
    type: z.literal("load_failed"),
    at: IsoTime,
    node: NodeName,
    model: ModelId,
    error: z.string(),
  }),
  z.object({ type: z.literal("evicted"), at: IsoTime, node: NodeName, model: ModelId }),
  z.object({ type: z.literal("unloaded"), at: IsoTime, node: NodeName, model: ModelId }),
  /** One more replica is being loaded: for waiting requests (`demand`) or `min_replicas`. */
  z.object({
    type: z.literal("scaled_out"),
    at: IsoTime,
    node: NodeName,
    model: ModelId,
    reason: z.enum(["demand", "min_replicas"]),
    replicas: NonNegativeInt,
  }),
  /** A replica beyond `min_replicas` was unloaded after its idle TTL. */
  z.object({
    type: z.literal("scaled_in"),
    at: IsoTime,
    node: NodeName,
    model: ModelId,
    replicas: NonNegativeInt,
  }),
  /** Requests for a model wait on a node until busy models there can be swapped out. */
  z.object({
    type: z.literal("swap_queued"),
    at: IsoTime,
    node: NodeName,
    model: ModelId,
    blockers: z.array(ModelId),
  }),
  /** The blocking models drained (or were drained at the bound): evict them and load. */
  z.object({
    type: z.literal("swap_started"),
    at: IsoTime,
    node: NodeName,
    model: ModelId,
    evicting: z.array(ModelId),
    waiting: NonNegativeInt,
    waited_ms: z.number().nonnegative(),
  }),
  /** An operator drained the node: no new placements or requests; its models unload. */
  z.object({ type: z.literal("node_draining"), at: IsoTime, node: NodeName }),
  /** The draining node has nothing resident left. */
  z.object({ type: z.literal("node_drained"), at: IsoTime, node: NodeName }),
  /** An operator ended the node's drain: it takes placements and requests again. */
  z.object({ type: z.literal("node_resumed"), at: IsoTime, node: NodeName }),
  /** A neuron joined (or joined again, with `url`) through `POST /api/neurons/join`. */
  z.object({ type: z.literal("node_joined"), at: IsoTime, node: NodeName, url: z.string() }),
  /** A node left the fleet: a joined one forgotten, or a static one dropped from cortex.yaml. */
  z.object({ type: z.literal("node_removed"), at: IsoTime, node: NodeName }),
  z.object({
    type: z.literal("catalogue_reloaded"),
    at: IsoTime,
    models: NonNegativeInt,
    error: z.string().nullable(),
  }),
  /** A valid catalogue entry cortex cannot place (e.g. no vram_mb, and no estimate possible). */
  z.object({
    type: z.literal("catalogue_problem"),
    at: IsoTime,
    model: ModelId,
    error: z.string(),
  }),
]);
export type FleetEvent = z.infer<typeof FleetEvent>;

/** `GET /api/catalogue`, for admin clients that render the catalogue next to the fleet. */
export const CatalogueAnswer = CatalogueReport;
export type CatalogueAnswer = CatalogueReport;
