import { z } from "zod";
import { LabelMap } from "./catalogue.js";
import {
  HarnessName,
  HttpUrl,
  ListenAddress,
  NodeName,
  NonNegativeInt,
  ownRecord,
  PositiveInt,
  TimerMs,
  TimerMsOrZero,
  TimerSeconds,
} from "./common.js";
import { HarnessKind, LoadRequest } from "./neuron.js";

/**
 * A harness entry in neuron.yaml. `kind` defaults from the name (`llamacpp` → builtin,
 * `llama-server`, `vllm`; anything else is a template and needs `command`).
 */
export const HarnessConfig = z.strictObject({
  kind: HarnessKind.optional(),
  /** Program and arguments; `{model_path}`, `{port}`, `{host}`, `{ctx_size}`, `{parallel}`,
   *  `{devices}` and `{tensor_parallel}` are substituted inside any argument. Never run by a shell. */
  command: z.union([z.string().min(1), z.array(z.string()).min(1)]).optional(),
  /** Path polled until it answers 2xx. */
  ready_path: z.string().startsWith("/").optional(),
  /**
   * Environment for the harness process. It gets only this, the variables named in
   * `inherit_env`, a few of the system's (PATH, HOME, locale, TMPDIR, ...) and the GPU selection:
   * never the neuron's token or the rest of its environment.
   */
  env: ownRecord(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).optional(),
  /** Variables of the neuron's own environment the harness gets too (e.g. `HF_TOKEN` for vLLM). */
  inherit_env: z
    .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/))
    .max(256)
    .optional(),
  /** For templates: catalogue `args` the harness accepts, each mapped to its command-line flag. */
  options: ownRecord(
    z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/),
    z.string().regex(/^--?[A-Za-z0-9][A-Za-z0-9_-]*$/, "must be a flag like --name"),
  ).optional(),
  /**
   * Whether a load may ask this harness for `trust_remote_code` (vLLM runs the repository's
   * Python then): `true` for any source, or the `hf:` repositories (`owner/repo`) allowed.
   * Only neuron.yaml can allow it; a load request asking for it otherwise is refused.
   */
  trust_remote_code: z
    .union([
      z.boolean(),
      z.array(
        z
          .string()
          .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/, "must be owner/repo"),
      ),
    ])
    .optional(),
});
export type HarnessConfig = z.infer<typeof HarnessConfig>;

/** A static device in neuron.yaml, for hosts where discovery cannot see the GPUs (and tests). */
export const DeviceOverride = z.strictObject({
  index: NonNegativeInt.optional(),
  vendor: z.string().default("unknown"),
  name: z.string().default("static device"),
  vram_total_mb: PositiveInt,
  vram_free_mb: NonNegativeInt.optional(),
  bus_id: z.string().nullable().default(null),
});
export type DeviceOverride = z.output<typeof DeviceOverride>;

/**
 * What both servers take to bound what clients can hold: bodies, buffered bytes, connections,
 * stalled readers, and how long a stop may take.
 */
const ServerLimits = {
  /**
   * Listening on a non-loopback address without authentication is refused at start unless
   * this is true (then a warning is logged).
   */
  allow_unauthenticated: z.boolean().default(false),
  /** The largest inference request body, in MiB (413 beyond it). */
  max_body_mb: PositiveInt.max(1024).default(20),
  /**
   * Request bodies held by all requests together, in MiB; a request that would pass it is
   * answered 503 before its body is read. Default: 1/16 of the machine's memory, 64 to 1024.
   */
  max_buffered_mb: PositiveInt.max(1_048_576).optional(),
  /** Open client connections; one more is answered 503 and closed. */
  max_connections: PositiveInt.max(1_000_000).default(10_000),
  /** A response whose client accepted no bytes for this long is ended and its slot freed. */
  client_stall_timeout_ms: TimerMs.default(30_000),
  /** After SIGTERM, in-flight requests get this long before they are cut. */
  shutdown_grace_ms: TimerMsOrZero.default(10_000),
};

/**
 * A bearer token or key: a client sends it in a header, whose value is trimmed, so one with
 * whitespace at either end could never match. Empty means none.
 */
const Secret = z
  .string()
  .max(4096)
  .refine((value) => value === value.trim(), "must not start or end with whitespace");

/** A token neurons join with: a secret long enough not to be guessed. */
export const JoinToken = Secret.min(16, "a join token must be at least 16 characters");

export const NeuronConfig = z
  .strictObject({
    name: NodeName,
    listen: ListenAddress.default("0.0.0.0:13131"),
    token: Secret.default(""),
    models_dir: z.string().min(1).default("./data/models"),
    default_idle_ttl_s: TimerSeconds.default(900),
    harnesses: ownRecord(HarnessName, HarnessConfig).default({ llamacpp: {} }),
    devices: z.array(DeviceOverride).default([]),
    hf_endpoint: HttpUrl.default("https://huggingface.co"),
    preload: z.array(LoadRequest).default([]),
    /**
     * What this node is (`{gpu: a100, zone: eu}`), reported in `/discovery`: a catalogue entry's
     * `node_selector` keeps a model on nodes whose labels match it. None by default.
     */
    labels: LabelMap.default({}),
    /** Where the neuron keeps its own state (records of the harness processes it started). */
    state_dir: z.string().min(1).default("./data/state"),
    /**
     * Joining by itself: with `cortex_url` and `join_token` both set, the neuron calls cortex's
     * `POST /api/neurons/join` on start, and again whenever cortex stops polling it. Cortex then
     * reaches the neuron at `advertise_url` (default: `http://<hostname>:<listen port>`, or the
     * listen address itself when it names one IP). `join_token` may come from NEURON_JOIN_TOKEN.
     */
    cortex_url: HttpUrl.max(2048).optional(),
    join_token: Secret.default(""),
    advertise_url: HttpUrl.max(2048).optional(),
    /** Requests that may wait per model beyond its `max_concurrency` running ones. */
    queue_max: NonNegativeInt.default(256),
    queue_timeout_ms: TimerMs.default(60_000),
    /**
     * Once a request has waited this long for a model that needs a busy one swapped out, the
     * busy model takes no new requests, drains, and is swapped for it.
     */
    swap_max_wait_ms: TimerMs.default(30_000),
    /** How long a stopping harness gets between SIGTERM and SIGKILL. */
    stop_grace_ms: TimerMsOrZero.default(10_000),
    /** Every loaded harness's ready path is probed this often; 0 turns the probes off. */
    health_interval_ms: TimerMsOrZero.default(5000),
    /** Failed probes in a row after which a harness is killed and recovered like a crash. */
    unhealthy_after_failures: PositiveInt.default(3),
    ...ServerLimits,
  })
  .superRefine((config, ctx) => {
    // Half a join setup would silently never join: both or neither.
    if ((config.cortex_url === undefined) !== (config.join_token === ""))
      ctx.addIssue({
        code: "custom",
        path: [config.cortex_url === undefined ? "cortex_url" : "join_token"],
        message: "cortex_url and join_token go together: set both to join a cortex, or neither",
      });
  });
export type NeuronConfig = z.output<typeof NeuronConfig>;
export type NeuronConfigInput = z.input<typeof NeuronConfig>;

export const NeuronTarget = z.strictObject({
  name: NodeName,
  url: HttpUrl,
  token: Secret.default(""),
  /**
   * Higher is preferred: among replicas with a free slot the highest priority serves, and cold
   * loads go to the highest-priority feasible node (owned GPUs first, rented ones when full).
   */
  priority: z.int().min(-1_000_000).max(1_000_000).default(0),
});
export type NeuronTarget = z.output<typeof NeuronTarget>;

export const CortexConfig = z
  .strictObject({
    listen: ListenAddress.default("0.0.0.0:31313"),
    catalogue: z.string().min(1).default("./catalogue"),
    data_dir: z.string().min(1).default("./data"),
    /** Requests older than this many days leave the request log (hourly); 0 keeps them all. */
    request_log_retention_days: NonNegativeInt.max(36_500).default(30),
    poll_interval_ms: TimerMs.min(50).default(2000),
    /** `/discovery` is polled on start and then every this many milliseconds. */
    discovery_interval_ms: TimerMs.min(50).default(60_000),
    poll_timeout_ms: TimerMs.default(1500),
    poll_concurrency: PositiveInt.default(64),
    unhealthy_after_failures: PositiveInt.default(3),
    api_keys: z.array(Secret.min(1)).default([]),
    admin_token: Secret.default(""),
    /**
     * Browser origins allowed to call `/v1/*` (CORS), exactly as a browser sends them
     * (`https://app.example.com`, `http://localhost:5173`); `"*"` allows every origin.
     */
    cors_origins: z
      .array(
        z.string().refine(
          (origin) => {
            if (origin === "*") return true;
            try {
              return new URL(origin).origin === origin;
            } catch {
              return false;
            }
          },
          { message: 'an origin is scheme://host[:port], no path or slash after it; or "*"' },
        ),
      )
      .default([]),
    load_timeout_ms: TimerMs.default(600_000),
    stream_idle_timeout_ms: TimerMs.default(120_000),
    queue_max: NonNegativeInt.default(256),
    queue_timeout_ms: TimerMs.default(60_000),
    /** As the neuron's: the longest a swap waits for busy models before they drain. */
    swap_max_wait_ms: TimerMs.default(30_000),
    neurons: z.array(NeuronTarget).default([]),
    /**
     * Tokens a neuron may present to `POST /api/neurons/join` to add itself to the fleet
     * (`Authorization: Bearer <token>`); none (the default) turns joining off. Secrets like
     * `admin_token`: at least 16 characters each.
     */
    join_tokens: z.array(JoinToken).max(64).default([]),
    /**
     * Conversation affinity: requests of one conversation go to the replica that served it
     * (its prompt is in that engine's cache) while its load stays within `load_factor` × the
     * mean; `ttl_s` is how long a conversation's replica is remembered.
     */
    affinity: z
      .strictObject({
        enabled: z.boolean().default(true),
        load_factor: z.number().min(1).max(100).default(1.25),
        ttl_s: TimerSeconds.min(1).default(1800),
      })
      .prefault({}),
    ...ServerLimits,
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.neurons.forEach((neuron, index) => {
      if (seen.has(neuron.name)) {
        ctx.addIssue({
          code: "custom",
          path: ["neurons", index, "name"],
          message: `duplicate neuron name "${neuron.name}"`,
        });
      }
      seen.add(neuron.name);
    });
  });
export type CortexConfig = z.output<typeof CortexConfig>;
export type CortexConfigInput = z.input<typeof CortexConfig>;
