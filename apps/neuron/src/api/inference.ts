import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type BodyBudget,
  bearerCheck,
  clientGone,
  type FastHandler,
  forwardedHeaders,
  forwardedType,
  forwardedUrl,
  modelInQuery,
  modelRoutePath,
  queryFields,
  readBody,
  requestFields,
  wrongToken,
} from "@cortex/http-kit";
import { NeuronError } from "../errors.js";
import type { ModelManager } from "../models/model-manager.js";
import { forward, type HarnessRequest } from "../proxy/forward.js";

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

const NO_BODY = Buffer.alloc(0);

/**
 * The model-routed requests (http-kit's route table: `POST /v1/*`, llama-server's `/rerank`,
 * `/infill`, `/completion`, `/v/*` aliases, `GET /v1/audio/voices?model=`), on plain node:http
 * (the fast path): the body (JSON or a multipart upload) goes to the model's harness byte for
 * byte, through its admission queue, with the client's query string and headers but for
 * credentials, cookies and hop-by-hop ones; the answer streams back. A client that leaves
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
    const url = req.url ?? "/";
    const path = modelRoutePath(req.method, url);
    if (path === null) throw new NeuronError("not_found", "no model-routed path here");
    const target = forwardedUrl(url, path);
    const get = modelInQuery(req.method);
    // Charged to the budget until the answer closes, waiting in the admission queue included.
    const body = get
      ? NO_BODY
      : await readBody(req, limits.bodyLimitBytes, limits.bodyBudget?.charge(res));
    const fields = get ? queryFields(target) : requestFields(req.headers["content-type"], body);
    const headers = forwardedHeaders(req.headers);
    // Cortex's request id, so the harness's log can name the request the client knows.
    const requestId = req.headers["x-request-id"];
    if (requestId !== undefined) headers["x-request-id"] = requestId;
    if (!get) headers["content-type"] = forwardedType(fields, req.headers["content-type"]);
    const request: HarnessRequest = { method: get ? "GET" : "POST", url: target, headers, body };
    const { signal: gone, release } = clientGone(res);
    try {
      await manager.run(fields.model, gone, (baseUrl, sawBytes) =>
        forward(baseUrl, request, res, gone, {
          stallTimeoutMs: limits.clientStallTimeoutMs,
          onBytes: sawBytes,
        }),
      );
    } catch (error) {
      if (gone.aborted) return;
      throw error;
    } finally {
      release();
    }
  };
};
