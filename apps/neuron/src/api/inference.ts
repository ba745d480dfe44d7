import type { IncomingMessage, ServerResponse } from "node:http";
import {
  bearerCheck,
  ClientSignal,
  type FastHandler,
  jsonObjectOf,
  pathOf,
  readBody,
  wrongToken,
} from "@cortex/http-kit";
import { NeuronError } from "../errors.js";
import type { ModelManager } from "../models/model-manager.js";
import { forward } from "../proxy/forward.js";

/** The largest request body the neuron accepts. */
const BODY_LIMIT_BYTES = 20 * 2 ** 20;

/** Reads `model` from a raw JSON body without re-serialising what is forwarded. */
const modelIn = (body: Buffer): string => {
  const model = jsonObjectOf(body).model;
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
 * `POST /v1/*`, on plain node:http (the fast path): the body goes to the model's harness byte
 * for byte, through its admission queue, and the answer streams back. A client that leaves
 * aborts the upstream request, which frees the slot.
 */
export const inferenceHandler = (manager: ModelManager, token: string): FastHandler => {
  const authorized = bearerCheck(token);
  return async (req: IncomingMessage, res: ServerResponse) => {
    if (!authorized(req.headers.authorization)) throw wrongToken();
    const body = await readBody(req, BODY_LIMIT_BYTES);
    const model = modelIn(body);
    const path = pathOf(req.url);
    const gone = new ClientSignal();
    const onClose = () => {
      if (!res.writableFinished) gone.abort(new Error("client disconnected"));
    };
    res.on("close", onClose);
    try {
      await manager.run(model, gone, (baseUrl) => forward(baseUrl, path, body, res, gone));
    } catch (error) {
      if (gone.aborted) return;
      throw error;
    } finally {
      res.off("close", onClose);
    }
  };
};
