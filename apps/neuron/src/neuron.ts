import { readFileSync } from "node:fs";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { WORKER_ENTRY } from "@cortex/harness-llamacpp/worker";
import { bodyBudgetFor, type Drain, drainServer, listen } from "@cortex/http-kit";
import { type NeuronConfig, parseListen } from "@cortex/protocol";
import type { Logger } from "pino";
import { createNeuronApp } from "./api/app.js";
import { EventHub } from "./api/events.js";
import {
  combinedSource,
  DiscoveryCache,
  HARNESS_GPU_ENV,
  nvidiaSmiProcesses,
  readHostInfo,
  staticSource,
} from "./discovery/index.js";
import { modelEstimator } from "./estimate/estimator.js";
import { defineHarness, type Harness, harnessInfo } from "./harnesses/definitions.js";
import { advertiseUrl } from "./join/advertise.js";
import { Joiner } from "./join/joiner.js";
import { ModelManager } from "./models/model-manager.js";
import { HeldSourcesCache } from "./sources/held-sources.js";
import { localSources } from "./sources/preparer.js";
import { RESTART_DELAYS_MS, STABLE_AFTER_MS } from "./supervisor/harness-supervisor.js";
import { freeLoopbackPort, probeReady } from "./supervisor/net.js";
import { PidRecords } from "./supervisor/pid-records.js";
import { spawnRunner } from "./supervisor/process-runner.js";

const VERSION = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

/** How often models_dir is scanned again for files copied in by hand (downloads rescan at once). */
const HELD_SOURCES_REFRESH_MS = 60_000;

/** Seconds a harness gets to become ready: a minute, plus 30 s per GB of model. */
const readyTimeoutMs = (sizeMb: number): number => 60_000 + Math.ceil(sizeMb / 1024) * 30_000;

const buildHarnesses = (
  config: NeuronConfig,
  env: Readonly<Record<string, string | undefined>>,
): Map<string, Harness> => {
  const harnesses = new Map<string, Harness>();
  const problems: string[] = [];
  for (const [name, entry] of Object.entries(config.harnesses)) {
    // `env`: harnesses get only its system variables and their `inherit_env`, never all of it.
    const harness = defineHarness(
      name,
      entry,
      { node: process.execPath, entry: WORKER_ENTRY },
      env,
    );
    if ("problems" in harness) problems.push(...harness.problems);
    else harnesses.set(name, harness);
  }
  if (problems.length > 0)
    throw new Error(`invalid harnesses in the configuration:\n  ${problems.join("\n  ")}`);
  return harnesses;
};

export interface Neuron {
  /** The neuron's own base URL, as load and endpoint answers name it. */
  readonly url: string;
  readonly server: Server;
  readonly manager: ModelManager;
  /**
   * Stops listening (requests in flight get `graceMs`, then are cut), stops discovery, then
   * every harness (each with stop_grace_ms). Called again with 0 while stopping, it cuts the
   * requests still in flight at once; the harnesses still get their grace.
   */
  readonly stop: (graceMs: number) => Promise<void>;
  /** SIGKILLs every harness synchronously; for process exit handlers. */
  readonly killNow: () => void;
}

/** Timings tests shorten; production uses the defaults. */
export interface NeuronTuning {
  /** How long without a poll from cortex before joining again (default FORGOTTEN_AFTER_MS). */
  readonly joinForgottenAfterMs?: number;
}

/**
 * The composition root: config → discovery → supervisor → models → API, listening when it
 * resolves, then the preloads. `main` runs it with the process's config, environment (only
 * what harnesses inherit, and HF_TOKEN) and signals.
 */
export const startNeuron = async (
  config: NeuronConfig,
  log: Logger,
  env: Readonly<Record<string, string | undefined>> = {},
  tuning: NeuronTuning = {},
): Promise<Neuron> => {
  const harnesses = buildHarnesses(config, env);
  const { host, port } = parseListen(config.listen);
  const urlHost =
    host === "0.0.0.0" || host === "::" ? "localhost" : host.includes(":") ? `[${host}]` : host;
  // With port 0 the real port is known only once listening; answers read it then.
  let selfUrl = `http://${urlHost}:${port}`;

  const pids = new PidRecords(
    resolve(config.state_dir, "harnesses.json"),
    "supervisor/watchdog.js",
  );
  for (const reaped of pids.reapLeftovers())
    log.warn(reaped, "ended a harness left over from an earlier run");

  const discovery = new DiscoveryCache({
    name: config.name,
    source:
      config.devices.length > 0
        ? staticSource(config.devices)
        : combinedSource({ onWarning: (message) => log.warn({}, message) }),
    // What each harness really holds (GET /models `vram_used_mb`), for discovered GPUs only.
    ...(config.devices.length > 0 ? {} : { processes: nvidiaSmiProcesses() }),
    host: () => readHostInfo(config.name),
    harnesses: harnessInfo(harnesses),
    refreshMs: 5000,
    onWarning: (message) => log.warn({}, message),
  });
  await discovery.start();
  // The weights on disk, for cortex's placement: scanned off the request path (bounded).
  const held = new HeldSourcesCache({
    modelsDir: resolve(config.models_dir),
    refreshMs: HELD_SOURCES_REFRESH_MS,
    onWarning: (message) => log.warn({}, message),
  });
  await held.start();

  const manager = new ModelManager(
    {
      harnesses,
      runner: spawnRunner({
        parentPid: process.pid,
        watchdogGraceMs: config.stop_grace_ms,
        // Each harness runs in an empty directory of its own under here (see process-runner.ts).
        workDir: resolve(config.state_dir, "run"),
        mark: pids.mark,
      }),
      sources: localSources({
        modelsDir: resolve(config.models_dir),
        hfEndpoint: config.hf_endpoint,
        ...(env.HF_TOKEN ? { hfToken: env.HF_TOKEN } : {}),
        onStored: () => void held.refresh(),
      }),
      devices: () => discovery.current().devices,
      gpuMemory: discovery,
      freePort: freeLoopbackPort,
      probe: probeReady,
      log,
      pids,
      onChange: (change) => log.debug({ change }, "model changed"),
    },
    {
      get selfUrl() {
        return selfUrl;
      },
      defaultIdleTtlS: config.default_idle_ttl_s,
      stopGraceMs: config.stop_grace_ms,
      readyTimeoutMs,
      readyPollMs: 200,
      restartDelaysMs: RESTART_DELAYS_MS,
      stableAfterMs: STABLE_AFTER_MS,
      healthIntervalMs: config.health_interval_ms,
      unhealthyAfterFailures: config.unhealthy_after_failures,
      maxQueued: config.queue_max,
      queueTimeoutMs: config.queue_timeout_ms,
      swapMaxWaitMs: config.swap_max_wait_ms,
      harnessEnv: HARNESS_GPU_ENV,
    },
  );

  let status: "ok" | "starting" | "stopping" = "starting";
  const events = new EventHub({ models: manager, log });
  const app = createNeuronApp({
    token: config.token,
    version: VERSION,
    startedAtMs: Date.now(),
    get selfUrl() {
      return selfUrl;
    },
    manager,
    events,
    // The same models_dir, hf_endpoint and token as the sources the manager downloads with.
    estimator: modelEstimator({
      modelsDir: resolve(config.models_dir),
      hfEndpoint: config.hf_endpoint,
      hfToken: env.HF_TOKEN,
      harnesses,
    }),
    discovery: () => ({ ...discovery.current(), sources: held.current(), labels: config.labels }),
    status: () => status,
    log,
    limits: {
      bodyLimitBytes: config.max_body_mb * 2 ** 20,
      bodyBudget: bodyBudgetFor(config.max_buffered_mb),
      clientStallTimeoutMs: config.client_stall_timeout_ms,
    },
  });
  // Cortex's polls (`GET /models`, `/discovery` with this neuron's token) tell the joiner that
  // cortex still knows this neuron; everything goes on to the app unchanged.
  let joiner: Joiner | undefined;
  const pollAuth = config.token === "" ? undefined : `Bearer ${config.token}`;
  const seen = (req: IncomingMessage, res: ServerResponse): void => {
    if (
      joiner !== undefined &&
      req.method === "GET" &&
      (req.url === "/models" || req.url === "/discovery") &&
      (pollAuth === undefined || req.headers.authorization === pollAuth)
    )
      joiner.polled();
    app(req, res);
  };
  const server: Server = await listen(seen, port, host, {
    maxConnections: config.max_connections,
  });
  server.keepAliveTimeout = 65_000;
  selfUrl = `http://${urlHost}:${(server.address() as { port: number }).port}`;
  log.info({ listen: config.listen, url: selfUrl }, "listening");
  if (config.cortex_url !== undefined && config.join_token !== "") {
    joiner = new Joiner({
      cortexUrl: config.cortex_url,
      joinToken: config.join_token,
      name: config.name,
      url: advertiseUrl(
        config.advertise_url,
        host,
        (server.address() as { port: number }).port,
        hostname(),
      ),
      token: config.token,
      log,
      ...(tuning.joinForgottenAfterMs === undefined
        ? {}
        : { forgottenAfterMs: tuning.joinForgottenAfterMs }),
    });
  }

  let drain: Drain | undefined;
  let stopped: Promise<void> | undefined;
  const stop = (graceMs: number): Promise<void> => {
    // A later call with no grace (a second signal) cuts the requests still in flight at once.
    if (stopped && graceMs === 0) drain?.cut();
    stopped ??= (async () => {
      status = "stopping";
      joiner?.stop();
      drain = drainServer(server, graceMs);
      // Event streams never end by themselves: they end now rather than at the grace's end.
      events.close();
      discovery.stop();
      held.stop();
      await drain.closed;
      log.info({}, "requests done: unloading every model");
      await manager.shutdown();
    })();
    return stopped;
  };

  status = "ok";
  // Joins once the neuron answers: cortex polls it as soon as it accepts the join.
  joiner?.start();
  // Preload after the listener is up, so health checks see a live neuron while models load.
  for (const request of config.preload) {
    manager.load(request).then(
      (answer) => log.info({ model: answer.id, load_ms: answer.load_ms }, "preloaded"),
      (error: unknown) => log.error({ model: request.model_id, err: error }, "preload failed"),
    );
  }
  return { url: selfUrl, server, manager, stop, killNow: () => manager.killAllNow() };
};
