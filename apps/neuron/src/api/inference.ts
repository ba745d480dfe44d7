import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type BodyBudget,
  bearerCheck,
  ClientSignal,
  type FastHandler,
  inferenceFields,
  pathOf,
  readBody,
  wrongToken,
} from "@cortex/http-kit";
import type { ModelManager } from "../models/model-manager.js";
import { forward } from "../proxy/forward.js";

/** What bounds one inference request: its body, all bodies together, a client that stops reading. */
export interface InferenceLimits {
  /** The largest request body accepted (413 beyond it). */
  readonly bodyLimitBytes: number;
  /** Bytes of bodies all requests may hold together (503 beyond it). */
  readonly bodyBudget?: BodyBudget;
  /** A client that accepts no bytes of its answer for this long is cut and its slot freed. */
  readonly clientStallTimeoutMs: number;
}

/** The neuron's limits unless neuron.yaml says otherwise. */
const DEFAULT_INFERENCE_LIMITS: InferenceLimits = {
  bodyLimitBytes: 20 * 2 ** 20,
  clientStallTimeoutMs: 30_000,
};

/**
 * `POST /v1/*`, on plain node:http (the fast path): the body goes to the model's harness byte
 * for byte, through its admission queue, and the answer streams back. A client that leaves
 * aborts the upstream request, which frees the slot.
 */
export const inferenceHandler = (
  manager: ModelManager,
  token: string,
  limits: InferenceLimits = DEFAULT_INFERENCE_LIMITS,
): FastHandler => {
  const authorized = bearerCheck(token);
  return async (req: IncomingMessage, res: ServerResponse) => {
    if (!authorized(req.headers.authorization)) throw wrongToken();
    // Charged to the budget until the answer closes, waiting in the admission queue included.
    const body = await readBody(req, limits.bodyLimitBytes, limits.bodyBudget?.charge(res));
    const { model } = inferenceFields(body);
    const path = pathOf(req.url);
    const gone = new ClientSignal();
    const onClose = () => {
      if (!res.writableFinished) gone.abort(new Error("client disconnected"));
    };
    res.on("close", onClose);
    try {
      await manager.run(model, gone, (baseUrl, sawBytes) =>
        forward(baseUrl, path, body, res, gone, {
          stallTimeoutMs: limits.clientStallTimeoutMs,
          onBytes: sawBytes,
        }),
      );
    } catch (error) {
      if (gone.aborted) return;
      throw error;
    } finally {
      res.off("close", onClose);
    }
  };
};
