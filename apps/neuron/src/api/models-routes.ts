import { openEventStream, parseBody } from "@cortex/http-kit";
import {
  ERROR_CODES,
  EstimateRequest,
  errorEnvelope,
  type LoadProgress,
  LoadRequest,
  UnloadRequest,
} from "@cortex/protocol";
import express, { type Router } from "express";
import { NeuronError } from "../errors.js";
import type { ModelEstimator } from "../estimate/estimator.js";
import type { ModelManager } from "../models/model-manager.js";

const modelOf = (manager: ModelManager, id: string) => {
  const entry = manager.get(id);
  if (!entry) throw new NeuronError("model_not_found", `model "${id}" is not on this node`);
  return entry;
};

/**
 * `/models`, `/models/load`, `/models/unload`, `/models/{id}/endpoint`, `/models/{id}/logs`, and
 * `/models/estimate` when the node is given an estimator.
 */
export const modelsRoutes = (
  manager: ModelManager,
  selfUrl: () => string,
  estimator?: ModelEstimator,
): Router => {
  const router = express.Router();
  const json = express.json({ limit: "1mb", type: () => true });

  router.get("/models", (_req, res) => {
    res.json(manager.list());
  });

  router.post("/models/load", json, async (req, res) => {
    const request = parseBody(LoadRequest, req.body);
    if (!(req.headers.accept ?? "").includes("text/event-stream")) {
      res.json(await manager.load(request));
      return;
    }
    // Progress as server-sent events, then exactly one `result` or `error` event.
    const stream = openEventStream(res);
    try {
      const answer = await manager.load(request, (progress: LoadProgress) =>
        stream.send("progress", progress),
      );
      stream.send("result", answer);
    } catch (error) {
      const known =
        error instanceof NeuronError ? error : new NeuronError("internal_error", "internal error");
      stream.send("error", {
        ...errorEnvelope(known.code, known.message),
        status: ERROR_CODES[known.code].status,
      });
    }
    stream.end();
  });

  if (estimator) {
    // The GPU memory a load with these fields would take, from the model file's GGUF header.
    router.post("/models/estimate", json, async (req, res) => {
      res.json(await estimator.estimate(parseBody(EstimateRequest, req.body)));
    });
  }

  router.post("/models/unload", json, async (req, res) => {
    const request = parseBody(UnloadRequest, req.body);
    await manager.unload(request.model_id, request.force ?? false);
    res.json({ status: "unloaded" });
  });

  router.get("/models/:id/endpoint", (req, res) => {
    modelOf(manager, req.params.id);
    res.json({ url: selfUrl() });
  });

  router.get("/models/:id/logs", (req, res) => {
    const entry = modelOf(manager, req.params.id);
    res.type("text/plain; charset=utf-8").send(entry.harness.output?.text() ?? entry.error ?? "");
  });

  return router;
};
