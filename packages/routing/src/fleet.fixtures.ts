import { type Catalogue, createCatalogue } from "@cortex/catalogue/rules";
import {
  type Device,
  type FleetNode,
  type FleetSnapshot,
  type HeldSources,
  type ModelProfile,
  type ModelProfileInput,
  ModelProfile as ModelProfileSchema,
  type NeuronModel,
} from "@cortex/protocol";

// Builders for routing tests: small, explicit snapshots with sensible defaults.

export const NOW = Date.parse("2026-11-24T12:00:00.000Z");
export const at = (secondsAgo: number): string => new Date(NOW - secondsAgo * 1000).toISOString();

export const profile = (id: string, fields: Partial<ModelProfileInput> = {}): ModelProfile =>
  ModelProfileSchema.parse({
    harness: "llamacpp",
    source: `${id}.gguf`,
    vram_mb: 4000,
    id,
    ...fields,
  });

export const catalogue = (...models: ModelProfile[]): Catalogue => createCatalogue(models);

export const model = (id: string, fields: Partial<NeuronModel> = {}): NeuronModel => ({
  id,
  harness: "llamacpp",
  status: "loaded",
  devices: [0],
  vram_mb: 4000,
  in_flight: 0,
  queued: 0,
  max_concurrency: 4,
  last_accessed: at(60),
  loaded_at: at(3600),
  error: null,
  ...fields,
});

/** A GPU with `total` MB; free defaults to total (resident models are subtracted by routing). */
export const gpu = (index: number, total: number, free = total): Device => ({
  index,
  vendor: "NVIDIA",
  name: "Test GPU",
  vram_total_mb: total,
  vram_free_mb: free,
  utilization_pct: 0,
  temperature_c: 40,
  bus_id: `00000000:0${index}:00.0`,
  driver_version: "550.54.14",
});

export interface NodeFields {
  readonly healthy?: boolean;
  readonly devices?: Device[];
  readonly models?: NeuronModel[];
  readonly url?: string;
  readonly harnesses?: string[];
  readonly priority?: number;
  /** What the node's discovery says it holds on disk; absent: unknown (an older neuron). */
  readonly sources?: HeldSources;
  /** neuron.yaml `labels` from its discovery; absent: unknown (an older neuron). */
  readonly labels?: Record<string, string>;
}

export const node = (name: string, fields: NodeFields = {}): FleetNode => ({
  name,
  url: fields.url ?? `http://${name}.lan:13131`,
  healthy: fields.healthy ?? true,
  consecutive_failures: fields.healthy === false ? 3 : 0,
  last_poll_at: at(1),
  last_ok_at: at(1),
  error: fields.healthy === false ? "ECONNREFUSED" : null,
  node: null,
  devices: fields.devices ?? [gpu(0, 24_000)],
  harnesses: (fields.harnesses ?? ["llamacpp", "vllm", "llama-server"]).map((harness) => ({
    name: harness,
    kind: "builtin",
  })),
  models: fields.models ?? [],
  ...(fields.priority === undefined ? {} : { priority: fields.priority }),
  ...(fields.sources === undefined ? {} : { sources: fields.sources }),
  ...(fields.labels === undefined ? {} : { labels: fields.labels }),
});

/** A node's held-sources answer: `files` relative to `/srv/models`, complete unless told. */
export const held = (files: readonly string[], complete = true): HeldSources => ({
  models_dir: "/srv/models",
  files: files.map((path) => ({ path, size_bytes: 1 << 30 })),
  complete,
});

export const fleet = (...nodes: FleetNode[]): FleetSnapshot => ({ taken_at: at(0), nodes });
