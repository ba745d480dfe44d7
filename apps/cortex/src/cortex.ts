import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import { resolve } from "node:path";
import { type Catalogue, formatProblems, watchCatalogue } from "@cortex/catalogue";
import { type Drain, drainServer, isInference, listen, withFastPath } from "@cortex/http-kit";
import { type CortexConfig, parseListen } from "@cortex/protocol";
import { adminRoutes } from "./api/admin-routes.js";
import { createCortexApp } from "./api/app.js";
import { clientRoutes } from "./api/client-routes.js";
import { withCors } from "./api/cors.js";
import { createEventFeed, eventsHandler } from "./api/events-route.js";
import { joinRoutes, neuronRemoveRoute } from "./api/join-routes.js";
import { isUpstream } from "./api/upstream-path.js";
import { type ConfigSource, configReload } from "./config-reload.js";
import type { NeuronsDiff } from "./config-watch.js";
import { FleetStore } from "./fleet/fleet-store.js";
import { LiveEvents } from "./fleet/live-events.js";
import { Membership } from "./fleet/membership.js";
import { Poller } from "./fleet/poller.js";
import type { Log } from "./log.js";
import { GpuMemory } from "./memory/gpu-memory.js";
import { CortexMetrics, metricsHandler } from "./metrics/metrics.js";
import { requestAccounting } from "./metrics/request-accounting.js";
import { NeuronClient } from "./neurons/neuron-client.js";
import { NodeDrains } from "./nodes/drains.js";
import { JoinedNodes } from "./nodes/joined-nodes.js";
import { AdmissionQueue } from "./router/admission-queue.js";
import { Dispatcher } from "./router/dispatcher.js";
import { LoadCoordinator } from "./router/load-coordinator.js";
import { ModelActions } from "./router/model-actions.js";
import { ReplicaKeeper } from "./router/replica-keeper.js";
import { Reservations } from "./router/reservations.js";
import {
  DrainTable,
  JoinedTable,
  knownNodes,
  LifecycleLog,
  MemoryLog,
  openState,
  RequestLog,
  RequestLogRetention,
  readMemory,
  recentEvents,
  TrafficReader,
} from "./state/index.js";

const VERSION = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

export interface Cortex {
  readonly url: string;
  readonly server: Server;
  readonly store: FleetStore;
  readonly dispatcher: Dispatcher;
  readonly poller: Poller;
  readonly metrics: CortexMetrics;
  readonly requestLog: RequestLog;
  /**
   * Applies a new cortex.yaml's `neurons:` list at once (added entries are polled, removed ones
   * stop, changed URLs and tokens apply); other changed keys are logged as needing a restart.
   */
  readonly applyConfig: (next: CortexConfig) => NeuronsDiff;
  /**
   * Reads the config file again and applies it (SIGHUP, a change of the file); a bad file is
   * logged and the last good config kept. False when it could not be applied (or no file).
   */
  readonly reloadConfig: () => boolean;
  /**
   * Closes the listener (in-flight requests get `graceMs`, then are cut), stops polling, flushes
   * the state. Called again with 0 while stopping, it cuts the requests still in flight at once.
   */
  readonly stop: (graceMs?: number) => Promise<void>;
}

/**
 * The composition root: catalogue → state → poller → router → API, listening and polling when
 * it resolves. `main` runs it with the process's config and signals; tests run it in-process.
 */
export const startCortex = async (
  config: CortexConfig,
  log: Log,
  source?: ConfigSource,
): Promise<Cortex> => {
  const startedAtMs = Date.now();

  const store = new FleetStore([]);
  // Created once the state is open; a reload before then is picked up by its start.
  let memory: GpuMemory | undefined;
  const catalogueWatcher = await watchCatalogue(resolve(config.catalogue), {
    onReload: (catalogue, files) => {
      log.info({ models: catalogue.models.length, files }, "catalogue reloaded");
      store.emit({
        type: "catalogue_reloaded",
        at: new Date().toISOString(),
        models: catalogue.models.length,
        error: null,
      });
      memory?.catalogueChanged();
    },
    onError: (problems) => {
      const error = formatProblems(problems);
      log.warn({ problems: error }, "catalogue edit is invalid; keeping the last good one");
      store.emit({
        type: "catalogue_reloaded",
        at: new Date().toISOString(),
        models: catalogueWatcher.current().models.length,
        error,
      });
    },
  });
  log.info({ models: catalogueWatcher.current().models.length }, "catalogue loaded");

  const state = openState(config.data_dir === ":memory:" ? ":memory:" : resolve(config.data_dir), {
    log,
  });
  const lifecycle = new LifecycleLog(state.db, { log });
  lifecycle.attach(store);
  const requestLog = new RequestLog(state.db, { log });
  const memoryLog = new MemoryLog(state.db, { log });
  const trafficReader = new TrafficReader(state, { log });
  const retention = new RequestLogRetention(state.db, {
    retentionDays: config.request_log_retention_days,
    log,
  });
  retention.start();

  // Which nodes are in the fleet (cortex.yaml's, and neurons that joined by themselves), with
  // the client and token each is reached with; nodes come and go at run time through it.
  const members = new Membership<NeuronClient>({
    store,
    connect: (target) =>
      new NeuronClient({
        name: target.name,
        url: target.url,
        token: target.token,
        timeoutMs: config.poll_timeout_ms,
      }),
    log,
  });
  for (const neuron of config.neurons) members.set(neuron, "static");
  const clientOf = (name: string): NeuronClient => members.client(name);
  const tokenOf = (name: string): string => members.token(name);

  // What cortex has learnt of each model's GPU memory: entries are placed by their effective
  // figure (estimated, measured, raised after an engine ran out of memory), and the catalogue
  // every other part reads is the one it builds.
  const gpuMemory = new GpuMemory({
    entries: () => catalogueWatcher.current(),
    cataloguePath: resolve(config.catalogue),
    fleet: store,
    client: clientOf,
    rows: readMemory(state.db),
    save: (row) => memoryLog.save(row),
    log,
    onSettled: (model) => dispatcher.memoryChanged(model),
  });
  memory = gpuMemory;
  const catalogue = (): Catalogue => gpuMemory.catalogue();

  // Reservations and the admission queue come first: the poller, the metrics and the
  // dispatcher all read them.
  const admission = new AdmissionQueue({
    maxQueued: config.queue_max,
    timeoutMs: config.queue_timeout_ms,
    retryAfterS: 2,
  });
  // A release wakes the model's next waiter and lets the swap queues look again.
  const reservations = new Reservations((model) => {
    dispatcher.released(model);
    drains.nudge();
  });
  // Nodes taken out for maintenance (kept in the state database): routing sends them nothing
  // new, and their models unload once idle.
  const drains: NodeDrains = new NodeDrains({
    fleet: store,
    store: new DrainTable(state.db),
    live: () => dispatcher.live,
    unload: async (node, model) => {
      await actions.unload({ model, node });
    },
    changed: () => dispatcher.nodesChanged(),
    log,
  });
  // Joined neurons, kept in the state database: back in the fleet at once after a restart.
  const joined = new JoinedNodes({
    store: new JoinedTable(state.db),
    members,
    forgetDrain: (name) => drains.forget(name),
    emit: (event) => store.emit(event),
    log,
  });
  const restored = joined.restore();
  if (restored > 0) log.info({ nodes: restored }, "joined neurons restored");
  const poller = new Poller({
    store,
    targets: [],
    client: clientOf,
    intervalMs: config.poll_interval_ms,
    discoveryIntervalMs: config.discovery_interval_ms,
    concurrency: config.poll_concurrency,
    unhealthyAfter: config.unhealthy_after_failures,
    log,
    onModelsSent: (name) => reservations.markSent(name),
    onModelsApplied: (name) => reservations.markApplied(name),
    onDiscovery: (name, answer) => {
      const url = members.url(name) ?? "";
      lifecycle.saveDiscovery(name, url, answer, Date.now());
    },
  });
  members.attach(poller);
  // Each healthy neuron's event stream: its changes reach the snapshot at once (polls check).
  const live = new LiveEvents({ store, client: clientOf, sink: poller, log });
  const refresh = (name: string) => {
    poller
      .pollNow(name)
      .catch((error: unknown) => log.warn({ node: name, err: error }, "poll failed"));
  };

  const metrics = new CortexMetrics({
    store,
    live: () => ({
      queued: admission.depths(),
      inFlight: reservations.byReplica,
      swapQueued: dispatcher.swaps.depths(),
    }),
  });
  const loads = new LoadCoordinator({
    store,
    client: clientOf,
    loadTimeoutMs: config.load_timeout_ms,
    log,
    refresh,
    observer: {
      load: (model, node, outcome, seconds) => metrics.observeLoad(model, node, outcome, seconds),
      eviction: (model, node) => metrics.eviction(model, node),
    },
    onOutOfMemory: (profile, node, message) => gpuMemory.outOfMemory(profile, node, message),
  });
  const dispatcher: Dispatcher = new Dispatcher({
    store,
    catalogue,
    loads,
    admission,
    reservations,
    swapLimits: { maxQueued: config.queue_max, maxWaitMs: config.swap_max_wait_ms },
    affinity: {
      enabled: config.affinity.enabled,
      loadFactor: config.affinity.load_factor,
      ttlMs: config.affinity.ttl_s * 1000,
    },
    observer: {
      affinity: (model, outcome) => metrics.affinity(model, outcome),
      waited: (model, seconds) => metrics.queueWait(model, seconds),
      swap: (model, node) => metrics.swap(model, node),
      scaleOut: (model, node) => metrics.scaleOut(model, node),
    },
    memory: gpuMemory,
    nodeDrains: drains.states,
  });
  const actions = new ModelActions({
    store,
    catalogue,
    dispatcher,
    loads,
    client: clientOf,
    unloadTimeoutMs: config.load_timeout_ms,
    memory: gpuMemory,
  });
  const keeper = new ReplicaKeeper({
    store,
    catalogue,
    loads,
    live: dispatcher.live,
    unload: async (node, model) => {
      await actions.unload({ model, node });
    },
    drain: (node, model) => dispatcher.swaps.drainReplica(node, model),
    view: (snapshot) => gpuMemory.view(snapshot),
    log,
    observer: {
      scaleOut: (model, node) => metrics.scaleOut(model, node),
      scaleIn: (model, node) => metrics.scaleIn(model, node),
    },
  });
  const record = requestAccounting({
    metrics,
    requestLog,
    log,
    catalogue,
    snapshot: () => store.snapshot,
  });

  const feed = createEventFeed(store, 200);
  // What clients talk to: the OpenAI surface (the hot path), `/upstream/…`, Ollama's API.
  const clients = clientRoutes({
    config,
    version: VERSION,
    startedAtMs,
    dispatcher,
    store,
    catalogue,
    // Ollama's model list shows sizes: an entry still being estimated shows 0, not infinity.
    listed: () => gpuMemory.listed(),
    actions,
    tokenOf,
    suspect: (node, why) => poller.suspect(node, why),
    record,
    log,
  });
  const { openai, upstream, ollama } = clients;
  const app = createCortexApp({
    version: VERSION,
    startedAtMs,
    log,
    metrics: metricsHandler(metrics),
    openai: openai.router,
    ollama: ollama.router,
    admin: adminRoutes({
      adminToken: config.admin_token,
      store,
      catalogue: () => gpuMemory.report(),
      waiting: () => dispatcher.waiting(),
      actions,
      // The request log is written behind: flush it so the newest requests count.
      traffic: (query) => {
        requestLog.flush();
        return trafficReader.summary(query);
      },
      // The lifecycle log is written behind too.
      history: (limit) => {
        lifecycle.flush();
        return { events: recentEvents(state.db, limit), nodes: knownNodes(state.db) };
      },
      events: eventsHandler(feed, { log }),
      drains,
      origin: (name) => members.origin(name),
      neurons: {
        join: joinRoutes({ joinTokens: config.join_tokens, joined }),
        remove: neuronRemoveRoute(joined),
      },
    }),
  });

  const { host, port } = parseListen(config.listen);
  // `/upstream/{model}/…` (any method) goes to the model's harness, on plain node:http too.
  const routes = withFastPath(isUpstream, upstream, app, log);
  // `POST /v1/*` runs on plain node:http (the hot path); everything else on the express app.
  // CORS goes in front of both, so their answers carry the same headers.
  const server: Server = await listen(
    withCors(config.cors_origins, withFastPath(isInference, openai.inference, routes, log)),
    port,
    host,
    { maxConnections: config.max_connections },
  );
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const address = server.address() as { port: number };
  clients.listening(host, address.port);
  const urlHost =
    host === "0.0.0.0" || host === "::" ? "localhost" : host.includes(":") ? `[${host}]` : host;
  log.info({ listen: config.listen, url: `http://${urlHost}:${address.port}` }, "listening");
  poller.start();
  live.start();
  gpuMemory.start();
  keeper.start();
  drains.start();

  // cortex.yaml's `neurons:` reloads without a restart; nothing else does (logged).
  const configuration = configReload({
    initial: config,
    source,
    members,
    superseded: (name) => joined.superseded(name),
    emit: (event) => store.emit(event),
    log,
  });

  let stopped: Promise<void> | undefined;
  let drain: Drain | undefined;
  const stop = (graceMs = 5000): Promise<void> => {
    // A later call with no grace (a second signal) cuts the requests still in flight at once.
    if (stopped && graceMs === 0) drain?.cut();
    stopped ??= (async () => {
      // No new connections from here on; requests in flight get graceMs, then are cut.
      drain = drainServer(server, graceMs);
      // Event streams never end by themselves: they end now rather than at the grace's end.
      configuration.close();
      feed.close();
      openai.close();
      keeper.stop();
      drains.stop();
      gpuMemory.stop();
      dispatcher.swaps.close();
      dispatcher.circuits.close();
      live.stop();
      await poller.stop();
      await drain.closed;
      // After the drain: Ollama requests in flight get the grace through these connections.
      ollama.close();
      await catalogueWatcher.close().catch(() => {});
      await retention.stop();
      await trafficReader.close();
      requestLog.close();
      memoryLog.close();
      lifecycle.close();
      state.close();
      members.close();
    })();
    return stopped;
  };
  return {
    url: `http://${urlHost}:${address.port}`,
    server,
    store,
    dispatcher,
    poller,
    metrics,
    requestLog,
    applyConfig: configuration.apply,
    reloadConfig: configuration.reload,
    stop,
  };
};
