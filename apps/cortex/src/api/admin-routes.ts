import { parseBody, requireBearer } from "@cortex/http-kit";
import {
  ApiLoadRequest,
  ApiUnloadRequest,
  type CatalogueReport,
  type NodeOrigin,
} from "@cortex/protocol";
import express, { type RequestHandler, type Router } from "express";
import { CortexError } from "../errors.js";
import type { FleetStore } from "../fleet/fleet-store.js";
import type { NodeDrains } from "../nodes/drains.js";
import type { ModelActions } from "../router/model-actions.js";
import type { KnownNode, ModelEvent, TrafficQuery, TrafficSummary } from "../state/queries.js";
import { nodeRoutes } from "./node-routes.js";

export interface AdminRoutesOptions {
  readonly adminToken: string;
  readonly store: FleetStore;
  /**
   * `GET /api/catalogue`: the entries with what cortex knows of their GPU memory (declared,
   * estimated, observed, effective) and the problems it found with them.
   */
  readonly catalogue: () => CatalogueReport;
  /** Requests cortex holds per model now (for a slot, a turn or a swap). */
  readonly waiting?: () => ReadonlyMap<string, number>;
  /** Placing and removing models, and their logs: the routes validate, call, and answer. */
  readonly actions: Pick<ModelActions, "load" | "unload" | "logs">;
  readonly events: RequestHandler;
  /** Nodes taken out for maintenance: the drain and resume routes, and each node's drain. */
  readonly drains?: Pick<NodeDrains, "drain" | "resume" | "states">;
  /**
   * Request counts, errors, latency and ttft percentiles, cold starts and tokens per time
   * bucket, per model (`buckets`) and over all models (`overall`); computed off the event loop
   * (it ranks every request of the window).
   */
  readonly traffic: (query: TrafficQuery) => Promise<TrafficSummary>;
  /** The newest `limit` lifecycle events kept in the state, and every node cortex has seen. */
  readonly history: (limit: number) => {
    events: readonly ModelEvent[];
    nodes: readonly KnownNode[];
  };
  /** How each node came into the fleet (`GET /api/fleet`'s `origin`; static when unknown). */
  readonly origin?: (node: string) => NodeOrigin | undefined;
  /** Neurons joining by themselves (its own bearer) and their removal (admin token). */
  readonly neurons?: { readonly join: Router; readonly remove: Router };
  readonly now?: () => number;
}

/** How many lifecycle events one `GET /api/history` answers at most. */
const HISTORY_MAX = 1000;

/** A whole number (of `unit`, when given) from a query string value, within bounds, or a 400. */
const wholeParam = (
  value: unknown,
  name: string,
  fallback: number,
  min: number,
  max: number,
  unit?: string,
): number => {
  if (value === undefined) return fallback;
  const parsed = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max)
    throw new CortexError(
      "invalid_request_error",
      `${name} must be a whole number${unit ? ` of ${unit}` : ""} from ${min} to ${max}`,
      { param: name },
    );
  return parsed;
};

/**
 * The operator's API (admin token): the fleet as cortex sees it, placing and removing models by
 * hand, and the live event stream.
 */
export const adminRoutes = (options: AdminRoutesOptions): Router => {
  const { store, actions } = options;
  const router = express.Router();
  const json = express.json({ limit: "64kb", type: () => true });
  // Joining carries a join token, not the admin token: it goes before the admin check.
  if (options.neurons) router.use(options.neurons.join);
  router.use("/api", requireBearer(options.adminToken));

  router.get("/api/fleet", (_req, res) => {
    const snapshot = store.snapshot;
    const drains = options.drains?.states;
    res.json({
      ...snapshot,
      nodes: snapshot.nodes.map((node) => ({
        ...node,
        drain: drains?.get(node.name) ?? null,
        origin: options.origin?.(node.name) ?? "static",
      })),
      waiting: Object.fromEntries(options.waiting?.() ?? []),
    });
  });

  if (options.drains) router.use(nodeRoutes(options.drains));
  if (options.neurons) router.use(options.neurons.remove);

  router.get("/api/catalogue", (_req, res) => {
    res.json(options.catalogue());
  });

  router.get("/api/events", options.events);

  // Traffic over the last `window` seconds in `bucket`-second steps, aggregated in SQL from the
  // request log (for dashboards): `?window=3600&bucket=60[&model=id]`. `overall` is its own
  // grouping over every model (or over the one asked for), since percentiles do not add up.
  router.get("/api/traffic", async (req, res) => {
    const windowS = wholeParam(req.query.window, "window", 3600, 60, 7 * 86_400, "seconds");
    const bucketS = wholeParam(req.query.bucket, "bucket", 60, 1, windowS, "seconds");
    const model = typeof req.query.model === "string" ? req.query.model : undefined;
    const sinceMs = (options.now ?? Date.now)() - windowS * 1000;
    const { buckets, overall } = await options.traffic({
      sinceMs,
      bucketMs: bucketS * 1000,
      ...(model === undefined ? {} : { model }),
    });
    res.json({ since: new Date(sinceMs).toISOString(), bucket_s: bucketS, buckets, overall });
  });

  // What survived restarts: loads with their durations, failures, evictions and health flips
  // (newest first, `?limit=`, 100 by default), and every node cortex has discovered.
  router.get("/api/history", (req, res) => {
    const limit = wholeParam(req.query.limit, "limit", 100, 1, HISTORY_MAX);
    const { events, nodes } = options.history(limit);
    res.json({
      events: events.map((event) => ({
        at: new Date(event.at).toISOString(),
        type: event.type,
        node: event.node,
        model: event.model,
        duration_ms: event.durationMs,
        detail: event.detail,
      })),
      nodes: nodes.map((node) => ({
        name: node.name,
        url: node.url,
        healthy: node.healthy,
        last_ok_at: node.lastOkAt === null ? null : new Date(node.lastOkAt).toISOString(),
        updated_at: new Date(node.updatedAt).toISOString(),
      })),
    });
  });

  // A model's harness output, from its neuron: `?node=` names it, or the one node that has it.
  router.get("/api/models/:id/logs", async (req, res) => {
    const node = typeof req.query.node === "string" ? req.query.node : undefined;
    const text = await actions.logs(req.params.id, node);
    res.type("text/plain; charset=utf-8").send(text);
  });

  // Places a model through the catalogue (or on the named node) and answers once it is loaded.
  router.post("/api/models/load", json, async (req, res) => {
    res.json(await actions.load(parseBody(ApiLoadRequest, req.body)));
  });

  // Unloads a model from the named node, or from every node that has it.
  router.post("/api/models/unload", json, async (req, res) => {
    res.json(await actions.unload(parseBody(ApiUnloadRequest, req.body)));
  });

  return router;
};
