import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Catalogue } from "@cortex/catalogue";
import {
  type Abortable,
  ApiError,
  type BodyBudget,
  capText,
  clientGone,
  clientKeyCheck,
  type FastHandler,
  forwardedHeaders,
  pathOf,
  readBody,
  UpstreamFailure,
  wrongToken,
} from "@cortex/http-kit";
import { ERROR_CODES, type FleetSnapshot } from "@cortex/protocol";
import { CortexError } from "../errors.js";
import type { Lease } from "../router/lease.js";
import type { RequestRecord } from "./openai-routes.js";
import { checkPath } from "./path-safety.js";
import { assignRequestId } from "./request-id.js";
import { relayToClient, sendHop } from "./upstream-hop.js";
import { knownModel, modelInPath, UPSTREAM_PREFIX, type UpstreamModel } from "./upstream-path.js";

// `/upstream/{model}/{path…}`, any method: straight to the model's harness (llama-server's
// `/props`, `/slots`, its web UI), through a lease on one of its replicas like any inference
// request, so the model loads if it must, the request counts on the replica, and the slot is
// given back when the answer ends or the client leaves. The neuron relays it under its own
// `/upstream/<id>/…` to the harness.

/** Tries other replicas this many times when a request never reached its neuron. */
const CONNECT_RETRIES = 2;

export interface UpstreamRouteOptions {
  /** A lease on a replica of `model` (the dispatcher's `acquire`), never one on `excluded`. */
  readonly acquire: (
    model: string,
    signal: Abortable,
    excluded: ReadonlySet<string>,
  ) => Promise<Lease>;
  readonly snapshot: () => FleetSnapshot;
  readonly catalogue: () => Catalogue;
  readonly apiKeys: readonly string[];
  /** The neuron token to send to `node`. */
  readonly tokenOf: (node: string) => string;
  /** A request to the node failed to connect or timed out: mark it suspect and poll it now. */
  readonly suspect: (node: string, why: string) => void;
  readonly streamIdleTimeoutMs: number;
  readonly loadTimeoutMs: number;
  readonly record: (record: RequestRecord) => void;
  /** The largest request body accepted (413 beyond it). */
  readonly bodyLimitBytes: number;
  /** Bytes of bodies all requests may hold together (503 beyond it); unbounded when absent. */
  readonly bodyBudget?: BodyBudget;
  /** A client that accepts no bytes of its answer for this long is cut (0: never). */
  readonly clientStallTimeoutMs: number;
}

/** What was answered, for the request log. */
interface Outcome {
  readonly status: number;
  readonly firstByteMs: number | null;
  /** `upstream_error` when the answer broke off after it started. */
  readonly errorCode: "upstream_error" | null;
}

/** One request's hop, as the retry loop needs it. */
interface Hop {
  readonly res: ServerResponse;
  readonly method: string;
  readonly model: string;
  /** The neuron's path for the first lease's model, with the query string. */
  readonly path: string;
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer;
  readonly signal: Abortable;
  readonly onLease: (lease: Lease) => void;
}

/**
 * The request never reached a neuron: `/upstream/<model>` with no rest is redirected to
 * `/upstream/<model>/` (301 for GET and HEAD, 308 otherwise, which keeps the method and body),
 * so the relative links of a harness's web UI resolve below it.
 */
const redirect = (res: ServerResponse, method: string, target: UpstreamModel, query: string) => {
  res.statusCode = method === "GET" || method === "HEAD" ? 301 : 308;
  res.setHeader("location", `${UPSTREAM_PREFIX}${target.name}/${query}`);
  res.setHeader("content-length", 0);
  res.end();
};

/**
 * The `/upstream/{model}/…` handler, on plain node:http beside the inference fast path. The
 * client key is required; the model is the longest model id or alias at the head of the path
 * (404 `model_not_found` when none is); paths with dot segments or encoded slashes are 400;
 * the body is read whole under the inference body limit and budget (a harness's web UI posts
 * small JSON), so a request that never reached a neuron can go to another replica.
 */
export const upstreamRoute = (options: UpstreamRouteOptions): FastHandler => {
  const authorized = clientKeyCheck(options.apiKeys);
  const attempt = tries(options);
  return async (req, res) => {
    const requestId = assignRequestId(req, res);
    // Before anything is recorded: unauthenticated clients do not write to the request log.
    if (!authorized(req.headers)) throw wrongToken();
    const started = performance.now();
    const at = Date.now();
    const url = req.url ?? "/";
    const path = pathOf(url);
    const query = url.slice(path.length);
    const method = req.method ?? "GET";
    let target: UpstreamModel | undefined;
    let lease: Lease | undefined;
    const { signal: gone, release } = clientGone(res);
    const record = (status: number, fields: Partial<RequestRecord> = {}) =>
      options.record({
        requestId,
        at,
        model: lease?.model ?? target?.id ?? null,
        node: lease?.node ?? null,
        status,
        latencyMs: performance.now() - started,
        ttftMs: null,
        usage: null,
        stream: String(res.getHeader("content-type") ?? "").startsWith("text/event-stream"),
        coldStart: lease?.coldStart ?? false,
        errorCode: null,
        ...fields,
      });
    try {
      checkPath(path);
      const rest = path.slice(UPSTREAM_PREFIX.length);
      target = modelInPath(rest, knownModel(options.catalogue(), options.snapshot()));
      if (target === undefined)
        throw new CortexError(
          "model_not_found",
          `no model cortex knows is named at the start of "${capText(rest, 256)}"`,
          { param: "model" },
        );
      if (target.rest === "") return redirect(res, method, target, query);
      // Charged to the budget until the answer closes, waiting for a slot included.
      const body = await readBody(req, options.bodyLimitBytes, options.bodyBudget?.charge(res));
      const headers = forwardedHeaders(req.headers);
      headers["x-request-id"] = requestId;
      const outcome = await attempt({
        res,
        method,
        model: target.id,
        // The id is the neuron's segment; the rest and the query go on as the client wrote them.
        path: `${UPSTREAM_PREFIX}${encodeURIComponent(target.id)}${target.rest}${query}`,
        headers,
        body,
        signal: gone,
        onLease: (taken) => {
          lease = taken;
        },
      });
      record(outcome.status, { ttftMs: outcome.firstByteMs, errorCode: outcome.errorCode });
    } catch (error) {
      if (gone.aborted) {
        record(499);
        return;
      }
      const code = error instanceof ApiError ? error.code : "internal_error";
      record(error instanceof ApiError ? ERROR_CODES[error.code].status : 500, {
        errorCode: code,
      });
      throw error;
    } finally {
      release();
    }
  };
};

/**
 * Serves one request through a lease and its neuron. One that never reached a neuron
 * (refused, unreachable, connect timeout) goes to another replica, twice at most; nothing else
 * is tried again, since a harness's native endpoint may act on a request it saw. Resolves with
 * what was answered (499: the client left; 502: the answer broke off after it started, and
 * `res` was cut); rejects with a CortexError when nothing was answered, or the signal's reason.
 */
const tries =
  (options: UpstreamRouteOptions) =>
  async (hop: Hop): Promise<Outcome> => {
    const { res, signal } = hop;
    const excluded = new Set<string>();
    let last: CortexError | undefined;
    for (let attempt = 0; ; attempt += 1) {
      let lease: Lease;
      try {
        lease = await options.acquire(hop.model, signal, excluded);
      } catch (error) {
        // No replica for another try: the client hears what went wrong with the last one.
        if (last !== undefined && error instanceof ApiError && !signal.aborted) throw last;
        throw error;
      }
      hop.onLease(lease);
      res.setHeader("x-cortex-node", lease.node);
      res.setHeader("x-cortex-cold-start", String(lease.coldStart));
      res.setHeader("x-cortex-queue-ms", String(Math.round(lease.waitedMs)));
      const token = options.tokenOf(lease.node);
      const started = performance.now();
      try {
        let response: IncomingMessage;
        try {
          response = await sendHop({
            baseUrl: lease.url,
            method: hop.method,
            path: hop.path,
            headers: token ? { ...hop.headers, authorization: `Bearer ${token}` } : hop.headers,
            body: hop.body,
            signal,
            connectTimeoutMs: 5000,
            // An unloaded model answers only once its neuron has reloaded it.
            idleTimeoutMs: lease.coldStart ? options.loadTimeoutMs : options.streamIdleTimeoutMs,
          });
        } catch (error) {
          if (signal.aborted) return { status: 499, firstByteMs: null, errorCode: null };
          if (!(error instanceof UpstreamFailure)) throw error;
          lease.report(false);
          options.suspect(
            lease.node,
            error.idle ? "a request timed out" : `a request failed (${error.code})`,
          );
          last = failureOf(error, lease.model);
          if (!error.neverArrived || attempt >= CONNECT_RETRIES) throw last;
          excluded.add(lease.node);
          continue;
        }
        const status = response.statusCode ?? 502;
        const relayed = await relayToClient(response, res, started, options.clientStallTimeoutMs);
        if (relayed.complete) {
          // Any answer counts for the replica: a native endpoint's 5xx is that endpoint's own
          // (llama-server answers 501 for `/slots` when they are off), not a broken harness,
          // and must not keep inference off the replica.
          lease.report(true);
          return { status, firstByteMs: relayed.firstByteMs, errorCode: null };
        }
        if (signal.aborted)
          return { status: 499, firstByteMs: relayed.firstByteMs, errorCode: null };
        // The answer broke off after it started: the only honest signal left is a cut.
        lease.report(false);
        res.destroy();
        return { status: 502, firstByteMs: relayed.firstByteMs, errorCode: "upstream_error" };
      } finally {
        lease.release();
      }
    }
  };

/** What the client is told when the neuron gave no answer. */
const failureOf = (error: UpstreamFailure, model: string): CortexError =>
  error.idle
    ? new CortexError("upstream_timeout", `the neuron serving "${model}" stopped answering`, {
        retryAfterS: 5,
      })
    : new CortexError(
        "upstream_error",
        `could not reach a neuron serving "${model}" (${error.code}); retry shortly`,
        { retryAfterS: 1 },
      );
