import type { Catalogue } from "@cortex/catalogue";
import { resolveModelName } from "@cortex/catalogue";
import { parseBody, requireBearer } from "@cortex/http-kit";
import {
  type ApiLoadAnswer,
  ApiLoadRequest,
  type ApiUnloadAnswer,
  ApiUnloadRequest,
  type FleetSnapshot,
} from "@cortex/protocol";
import { type LoadPlan, withoutModel } from "@cortex/routing";
import express, { type RequestHandler, type Router } from "express";
import { CortexError } from "../errors.js";
import type { FleetStore } from "../fleet/fleet-store.js";
import type { Dispatcher } from "../router/dispatcher.js";
import type { LoadClient, LoadCoordinator, LoadedModel } from "../router/load-coordinator.js";
import type { TrafficQuery, TrafficSummary } from "../state/queries.js";

export interface AdminRoutesOptions {
  readonly adminToken: string;
  readonly store: FleetStore;
  readonly catalogue: () => Catalogue;
  readonly dispatcher: Dispatcher;
  readonly loads: LoadCoordinator;
  readonly client: (node: string) => LoadClient & { logs(id: string): Promise<string> };
  /** Stopping a harness can take its grace period and more: unloads get this long. */
  readonly unloadTimeoutMs: number;
  readonly events: RequestHandler;
  /**
   * Request counts, errors, latency and ttft percentiles, cold starts and tokens per time
   * bucket, per model (`buckets`) and over all models (`overall`).
   */
  /** The traffic summary (computed off the event loop: it ranks every request of the window). */
  readonly traffic: (query: TrafficQuery) => Promise<TrafficSummary>;
  readonly now?: () => number;
}

/** A whole number of seconds from a query string value, within bounds, or a 400. */
const secondsParam = (
  value: unknown,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number => {
  if (value === undefined) return fallback;
  const parsed = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max)
    throw new CortexError(
      "invalid_request_error",
      `${name} must be a whole number of seconds from ${min} to ${max}`,
      { param: name },
    );
  return parsed;
};

interface ErrorLike {
  readonly code?: unknown;
  readonly message?: unknown;
}

/** The API's answer for a load the coordinator ran (or joined). */
const answerOf = (loaded: LoadedModel): ApiLoadAnswer => ({
  model: loaded.model,
  node: loaded.node,
  status: "loaded",
  url: loaded.url,
  load_ms: loaded.loadMs,
  already_loaded: loaded.alreadyLoaded,
  evicted: [...loaded.evicted],
});

const nodeUrl = (snapshot: FleetSnapshot, node: string): string =>
  snapshot.nodes.find((entry) => entry.name === node)?.url ?? "";

/**
 * The operator's API (admin token): the fleet as cortex sees it, placing and removing models by
 * hand, and the live event stream.
 */
export const adminRoutes = (options: AdminRoutesOptions): Router => {
  const { store, dispatcher, loads } = options;
  const router = express.Router();
  const json = express.json({ limit: "64kb", type: () => true });
  router.use("/api", requireBearer(options.adminToken));

  router.get("/api/fleet", (_req, res) => {
    res.json(store.snapshot);
  });

  router.get("/api/catalogue", (_req, res) => {
    res.json({ models: options.catalogue().models });
  });

  router.get("/api/events", options.events);

  // Traffic over the last `window` seconds in `bucket`-second steps, aggregated in SQL from the
  // request log (for dashboards): `?window=3600&bucket=60[&model=id]`. `overall` is its own
  // grouping over every model (or over the one asked for), since percentiles do not add up.
  router.get("/api/traffic", async (req, res) => {
    const windowS = secondsParam(req.query.window, "window", 3600, 60, 7 * 86_400);
    const bucketS = secondsParam(req.query.bucket, "bucket", 60, 1, windowS);
    const model = typeof req.query.model === "string" ? req.query.model : undefined;
    const sinceMs = (options.now ?? Date.now)() - windowS * 1000;
    const { buckets, overall } = await options.traffic({
      sinceMs,
      bucketMs: bucketS * 1000,
      ...(model === undefined ? {} : { model }),
    });
    res.json({ since: new Date(sinceMs).toISOString(), bucket_s: bucketS, buckets, overall });
  });

  // A model's harness output, from its neuron: `?node=` names it, or the one node that has it.
  router.get("/api/models/:id/logs", async (req, res) => {
    const id = resolveModelName(options.catalogue(), req.params.id)?.id ?? req.params.id;
    const wanted = typeof req.query.node === "string" ? req.query.node : undefined;
    const holders = store.snapshot.nodes.filter(
      (node) =>
        (wanted === undefined || node.name === wanted) && node.models.some((m) => m.id === id),
    );
    if (holders.length === 0)
      throw new CortexError("model_not_found", `model "${id}" is not on ${wanted ?? "any node"}`);
    if (holders.length > 1)
      throw new CortexError(
        "invalid_request_error",
        `model "${id}" is on ${holders.map((node) => node.name).join(", ")}: name one with ?node=`,
        { param: "node" },
      );
    const node = holders[0]?.name ?? "";
    let text: string;
    try {
      text = await options.client(node).logs(id);
    } catch (error) {
      const { message } = (error ?? {}) as ErrorLike;
      throw new CortexError(
        "upstream_error",
        `reading the logs of "${id}" from ${node} failed: ${typeof message === "string" ? message : String(error)}`,
      );
    }
    res.type("text/plain; charset=utf-8").send(text);
  });

  // Places a model through the catalogue (or on the named node) and answers once it is loaded.
  router.post("/api/models/load", json, async (req, res) => {
    const request = parseBody(ApiLoadRequest, req.body);
    const profile = resolveModelName(options.catalogue(), request.model);
    // A load of this model already under way elsewhere is not what was asked for: let it
    // finish, then decide for the named node.
    const other = profile ? loads.runningOn(profile.id) : undefined;
    if (profile && other !== undefined && request.node !== undefined && other !== request.node)
      await loads.running(profile.id)?.catch(() => {});
    const decision = dispatcher.decide(request.model, request.node);
    switch (decision.kind) {
      case "route":
      case "saturated": {
        const node =
          decision.kind === "route"
            ? decision.node
            : (store.snapshot.nodes.find(
                (entry) =>
                  (request.node === undefined || entry.name === request.node) &&
                  entry.models.some((m) => m.id === decision.model && m.status === "loaded"),
              )?.name ?? "");
        res.json({
          status: "loaded",
          model: decision.model,
          node,
          url: nodeUrl(store.snapshot, node),
          load_ms: 0,
          already_loaded: true,
          evicted: [],
        } satisfies ApiLoadAnswer);
        return;
      }
      case "load": {
        const loaded = await loads.load(decision.profile, decision.plan);
        res.json(answerOf(loaded));
        return;
      }
      case "lazy":
      case "hold": {
        // Known to a node but not serving (idle-unloaded, loading, recovering): load it there.
        if (!profile) {
          throw new CortexError(
            "invalid_request_error",
            `model "${decision.model}" is not in the catalogue, so cortex cannot load it again on ${decision.node}; load it on the neuron itself`,
            { param: "model" },
          );
        }
        const entry = store.snapshot.nodes
          .find((node) => node.name === decision.node)
          ?.models.find((model) => model.id === decision.model);
        const devices = entry?.devices ?? [];
        const plan: LoadPlan = {
          node: decision.node,
          url: nodeUrl(store.snapshot, decision.node),
          devices,
          tensor_parallel: Math.max(1, devices.length),
          evict: [],
        };
        const loaded = await (loads.running(profile.id) ?? loads.load(profile, plan));
        res.json(answerOf(loaded));
        return;
      }
      case "reject":
        throw new CortexError(decision.code, decision.message, {
          retryAfterS: decision.retry_after_s,
        });
    }
  });

  // Unloads a model from the named node, or from every node that has it.
  router.post("/api/models/unload", json, async (req, res) => {
    const request = parseBody(ApiUnloadRequest, req.body);
    const id = resolveModelName(options.catalogue(), request.model)?.id ?? request.model;
    if (request.node !== undefined && !store.snapshot.nodes.some((n) => n.name === request.node))
      throw new CortexError("not_found", `node "${request.node}" is not in the fleet`, {
        param: "node",
      });
    const holders = store.snapshot.nodes.filter(
      (node) =>
        (request.node === undefined || node.name === request.node) &&
        node.models.some((model) => model.id === id),
    );
    if (holders.length === 0) {
      throw new CortexError(
        "model_not_found",
        `model "${request.model}" is not on ${request.node ?? "any node"}`,
        { param: "model" },
      );
    }
    const unloaded: string[] = [];
    for (const node of holders) {
      try {
        await options
          .client(node.name)
          .unload(
            { model_id: id, force: request.force ?? false },
            { timeoutMs: options.unloadTimeoutMs },
          );
      } catch (error) {
        const { code, message } = (error ?? {}) as ErrorLike;
        if (code === "model_busy")
          throw new CortexError(
            "model_busy",
            `model "${id}" is busy on ${node.name}; retry, or send force: true`,
            { retryAfterS: 5 },
          );
        if (code !== "model_not_found") {
          throw new CortexError(
            "upstream_error",
            `unloading "${id}" from ${node.name} failed: ${typeof message === "string" ? message : String(error)}`,
          );
        }
      }
      store.applyOwn(node.name, (snapshot) => withoutModel(snapshot, node.name, id));
      store.emit({ type: "unloaded", at: new Date().toISOString(), node: node.name, model: id });
      unloaded.push(node.name);
    }
    const body: ApiUnloadAnswer = { model: id, status: "unloaded", nodes: unloaded };
    res.json(body);
  });

  return router;
};
