import { z } from "zod";
import { IsoTime, ModelId, NonNegativeInt } from "./common.js";
import { ModelsAnswer, NeuronModel } from "./neuron.js";

// `GET /events` on a neuron: its live state as server-sent events, so cortex hears of a change
// at once instead of at its next poll. Every message carries an `id:` that grows by one per
// message the neuron sends (gaps are messages sent to other subscribers); a subscriber always
// starts with a `snapshot`, so it never needs `Last-Event-ID`.

/** The `event:` names a neuron's event stream sends. */
export const NeuronEventName = z.enum(["snapshot", "model", "heartbeat"]);
export type NeuronEventName = z.infer<typeof NeuronEventName>;

/** How often a neuron sends `heartbeat` on every stream, whatever else happens. */
export const NEURON_HEARTBEAT_MS = 1000;

/**
 * The fewest milliseconds between two `model` events a neuron sends for one model's in-flight
 * or queued counts (its last state wins); a status change is sent at once.
 */
export const NEURON_EVENT_COALESCE_MS = 100;

/** The first message of every stream: every model as `GET /models` lists it. */
export const SnapshotEvent = ModelsAnswer;
export type SnapshotEvent = z.infer<typeof SnapshotEvent>;

/** `model` when the neuron forgot a model (unloaded, or a failure that expired). */
export const ModelRemovedEvent = z.object({ id: ModelId, removed: z.literal(true) });
export type ModelRemovedEvent = z.infer<typeof ModelRemovedEvent>;

/** `model`: the model as `GET /models` lists it now, or that it is gone. */
export const ModelEvent = z.union([ModelRemovedEvent, NeuronModel]);
export type ModelEvent = z.infer<typeof ModelEvent>;

/** `heartbeat`: the neuron is alive; `seq` is this message's own `id:`. */
export const HeartbeatEvent = z.object({ at: IsoTime, seq: NonNegativeInt });
export type HeartbeatEvent = z.infer<typeof HeartbeatEvent>;
