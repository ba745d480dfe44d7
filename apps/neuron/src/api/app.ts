import type { RequestListener } from "node:http";
import { errorHandler, isInference, notFound, requireBearer, withFastPath } from "@cortex/http-kit";
import type { DiscoveryAnswer } from "@cortex/protocol";
import express from "express";
import type { ModelEstimator } from "../estimate/estimator.js";
import type { Log, ModelManager } from "../models/model-manager.js";
import { EventHub, eventsHandler } from "./events.js";
import { type InferenceLimits, inferenceHandler } from "./inference.js";
import { modelsRoutes } from "./models-routes.js";
import { isUpstream, upstreamHandler } from "./upstream.js";

export interface AppDeps {
  readonly token: string;
  readonly version: string;
  readonly startedAtMs: number;
  readonly selfUrl: string;
  readonly manager: ModelManager;
  /** Answers `POST /models/estimate`; without it the route does not exist. */
  readonly estimator?: ModelEstimator;
  readonly discovery: () => DiscoveryAnswer;
  readonly status: () => "ok" | "starting" | "stopping";
  readonly log: Log;
  /** Bounds on inference requests (body size, buffered bodies, stalled clients). */
  readonly limits?: InferenceLimits;
  /** `GET /events`'s streams, which the neuron ends when it stops; absent: a hub of its own. */
  readonly events?: EventHub;
}

/**
 * The neuron's HTTP API (DESIGN.md "Neuron HTTP API"). Every route but /health needs the token.
 * `POST /v1/*` runs on plain node:http (the hot path); the rest is an express app.
 */
export const createNeuronApp = (deps: AppDeps): RequestListener => {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  app.get("/health", (_req, res) => {
    res.json({
      status: deps.status(),
      version: deps.version,
      uptime_s: (Date.now() - deps.startedAtMs) / 1000,
    });
  });

  app.use(requireBearer(deps.token));
  app.get("/discovery", (_req, res) => {
    res.json(deps.discovery());
  });
  app.get(
    "/events",
    eventsHandler(deps.events ?? new EventHub({ models: deps.manager, log: deps.log })),
  );
  app.use(modelsRoutes(deps.manager, () => deps.selfUrl, deps.estimator));
  app.use(notFound);
  app.use(errorHandler(deps.log));
  // `/upstream/<model>/…` (any method) goes to the model's harness, on plain node:http too.
  const rest = withFastPath(
    isUpstream,
    upstreamHandler(deps.manager, deps.token, deps.limits),
    app,
    deps.log,
  );
  return withFastPath(
    isInference,
    inferenceHandler(deps.manager, deps.token, deps.limits),
    rest,
    deps.log,
  );
};
