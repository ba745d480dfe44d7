import type { IncomingMessage, ServerResponse } from "node:http";
import {
  bearerCheck,
  clientGone,
  type FastHandler,
  forwardedHeaders,
  pathOf,
  post,
  proxyAgents,
  readBody,
  relayAnswer,
  targetOf,
  UpstreamFailure,
  wrongToken,
} from "@cortex/http-kit";
import { NeuronError } from "../errors.js";
import type { ModelManager } from "../models/model-manager.js";
import type { InferenceLimits } from "./inference.js";

// `/upstream/<model-id>/<path…>`, any method: straight to the model's harness (llama-server's
// `/props`, `/slots`, its web UI), inside one of the model's admission slots like inference, so
// an unloaded model reloads first and a busy one queues. Cortex's `/upstream/{model}/…` comes
// here with the canonical id.

const PREFIX = "/upstream/";

const agents = proxyAgents(1024);

/** The neuron's limits unless neuron.yaml says otherwise (the inference path's). */
const DEFAULT_LIMITS: InferenceLimits = {
  bodyLimitBytes: 20 * 2 ** 20,
  clientStallTimeoutMs: 30_000,
};

/** `/upstream/…`, any method: the requests `upstreamHandler` takes. */
export const isUpstream = (req: IncomingMessage): boolean => req.url?.startsWith(PREFIX) === true;

/** Where an upstream request goes: the model, and the harness's path (with the query). */
export interface UpstreamTarget {
  readonly model: string;
  readonly path: string;
}

/**
 * The model id (the first segment, percent-decoded: ids hold no `/`) and the harness's path of
 * an upstream request URL: the rest as written, `/` when there is none, with the query string.
 * Throws a 400 for dot segments (raw or encoded), encoded slashes or backslashes anywhere in the
 * path, and for a missing id.
 */
export const upstreamTarget = (url: string): UpstreamTarget => {
  const path = pathOf(url);
  const segments = path.slice(PREFIX.length).split("/");
  const decoded = segments.map((segment) => {
    try {
      return decodeURIComponent(segment);
    } catch {
      return "..";
    }
  });
  if (decoded.some((segment) => segment === "." || segment === ".." || /[/\\\0]/.test(segment)))
    throw new NeuronError(
      "invalid_request_error",
      "the path may not contain . or .. segments or encoded slashes",
    );
  const [model = ""] = decoded;
  if (model === "")
    throw new NeuronError("invalid_request_error", "the path names no model: /upstream/<id>/…");
  const rest = path.slice(PREFIX.length + (segments[0] ?? "").length);
  return { model, path: `${rest === "" ? "/" : rest}${url.slice(path.length)}` };
};

/**
 * `/upstream/<model>/…` on plain node:http beside the inference fast path: the neuron's token
 * is required; the body is read whole under the inference limits; the request and its answer
 * pass through the model's admission slot (`manager.run`), which a caller that leaves frees.
 */
export const upstreamHandler = (
  manager: ModelManager,
  token: string,
  limits: InferenceLimits = DEFAULT_LIMITS,
): FastHandler => {
  const authorized = bearerCheck(token);
  return async (req: IncomingMessage, res: ServerResponse) => {
    if (!authorized(req.headers.authorization)) throw wrongToken();
    const target = upstreamTarget(req.url ?? "/");
    // Charged to the budget until the answer closes, waiting in the admission queue included.
    const body = await readBody(req, limits.bodyLimitBytes, limits.bodyBudget?.charge(res));
    // The caller's headers as the inference path passes them: no credential (the neuron's
    // token included), cookie or hop-by-hop header; cortex's request id goes on.
    const headers = forwardedHeaders(req.headers);
    const requestId = req.headers["x-request-id"];
    if (requestId !== undefined) headers["x-request-id"] = requestId;
    const { signal: gone, release } = clientGone(res);
    try {
      await manager.run(target.model, gone, async (baseUrl, sawBytes) => {
        let response: IncomingMessage;
        try {
          ({ response } = await post({
            method: req.method ?? "GET",
            target: targetOf(baseUrl),
            path: target.path,
            agents,
            headers,
            body,
            signal: gone,
            connectTimeoutMs: 5000,
            // A harness that accepted the request never times out on its own: the caller decides.
            idleTimeoutMs: 0,
          }));
        } catch (error) {
          if (gone.aborted) return;
          const code = error instanceof UpstreamFailure ? error.code : "error";
          throw new NeuronError("upstream_error", `the model server did not answer (${code})`, {
            cause: error,
            retryAfterS: 1,
          });
        }
        const complete = await relayAnswer(response, res, {
          stallTimeoutMs: limits.clientStallTimeoutMs,
          onChunk: sawBytes,
        });
        // Bytes may have reached the caller: the only honest signal left is a cut connection.
        if (!complete && !gone.aborted) res.destroy();
      });
    } catch (error) {
      if (gone.aborted) return;
      throw error;
    } finally {
      release();
    }
  };
};
