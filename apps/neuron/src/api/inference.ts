import express, { type Router } from "express";
import { NeuronError } from "../errors.js";
import type { ModelManager } from "../models/model-manager.js";
import { forward } from "../proxy/forward.js";

/** Reads `model` from a raw JSON body without re-serialising what is forwarded. */
const modelIn = (body: unknown): string => {
  if (!Buffer.isBuffer(body) || body.length === 0) {
    throw new NeuronError(
      "invalid_request_error",
      "the request body must be a JSON object with a model",
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw new NeuronError("invalid_request_error", "the request body is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new NeuronError("invalid_request_error", "the request body must be a JSON object");
  }
  const model = (parsed as { model?: unknown }).model;
  if (typeof model !== "string" || model === "") {
    throw new NeuronError(
      "missing_model",
      "the request body has no model: say which model should answer",
      { param: "model" },
    );
  }
  return model;
};

/**
 * `POST /v1/*`: the body goes to the model's harness byte for byte, through its admission queue,
 * and the answer streams back. A client that leaves aborts the upstream request, which frees
 * the slot.
 */
export const inferenceRoutes = (manager: ModelManager): Router => {
  const router = express.Router();
  router.post(/^\/v1\/.+/, express.raw({ type: () => true, limit: "20mb" }), async (req, res) => {
    const model = modelIn(req.body);
    const controller = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) controller.abort(new Error("client disconnected"));
    };
    res.on("close", onClose);
    try {
      await manager.run(model, controller.signal, (baseUrl) =>
        forward(baseUrl, req.path, req.body as Buffer, res, controller.signal),
      );
    } catch (error) {
      if (controller.signal.aborted) return;
      throw error;
    } finally {
      res.off("close", onClose);
    }
  });
  return router;
};
