import type { IncomingMessage, ServerResponse } from "node:http";
import type { Catalogue } from "@cortex/catalogue";
import { resolveModelName } from "@cortex/catalogue";
import {
  ApiError,
  type BodyBudget,
  clientGone,
  clientKeyCheck,
  type FastHandler,
  forwardedHeaders,
  forwardedType,
  forwardedUrl,
  type InferenceFields,
  modelInQuery,
  modelRoutePath,
  pathOf,
  queryFields,
  readBody,
  requestFields,
  requireClientKey,
  wrongToken,
} from "@cortex/http-kit";
import { ERROR_CODES, type ErrorCode, type FleetEvent, type FleetSnapshot } from "@cortex/protocol";
import express, { type Router } from "express";
import { CortexError } from "../errors.js";
import { endWithErrorEvent, isEventStream, proxyWithRetries } from "../proxy/attempts.js";
import type { Usage } from "../proxy/forward.js";
import { NodeWatch } from "../proxy/node-watch.js";
import type { Dispatcher } from "../router/dispatcher.js";
import type { Lease } from "../router/lease.js";
import { affinityKeyOf } from "./affinity-key.js";

import { findModel, listModels } from "./models-list.js";
import { checkPath } from "./path-safety.js";
import { assignRequestId } from "./request-id.js";
import { LoadProgressBoard, WaitFeedback } from "./wait-feedback.js";

/** `fn`, called at most once: later calls return the first result. */
const once = <T>(fn: () => T): (() => T) => {
  let done = false;
  let value: T;
  return () => {
    if (!done) {
      value = fn();
      done = true;
    }
    return value;
  };
};

/** One finished client request, for metrics and the request log. */
export interface RequestRecord {
  readonly requestId: string;
  readonly at: number;
  /** The canonical id when it resolved, else what the client asked for (or null). */
  readonly model: string | null;
  readonly node: string | null;
  readonly status: number;
  readonly latencyMs: number;
  readonly ttftMs: number | null;
  readonly usage: Usage | null;
  readonly stream: boolean;
  readonly coldStart: boolean;
  readonly errorCode: ErrorCode | null;
}

export interface OpenAIRoutesOptions {
  readonly dispatcher: Dispatcher;
  readonly snapshot: () => FleetSnapshot;
  readonly catalogue: () => Catalogue;
  readonly apiKeys: readonly string[];
  /** The neuron token to send to `node`. */
  readonly tokenOf: (node: string) => string;
  /**
   * A request to the node failed to connect or timed out: the node gets no new requests until a
   * poll, asked for now, finds it answering (the poller's `suspect`).
   */
  readonly suspect: (node: string, why: string) => void;
  readonly streamIdleTimeoutMs: number;
  readonly loadTimeoutMs: number;
  readonly record: (record: RequestRecord) => void;
  readonly startedS: number;
  /** The largest request body accepted (413 beyond it); 20 MiB by default, as the neuron's. */
  readonly bodyLimitBytes?: number;
  /** Bytes of bodies all requests may hold together (503 beyond it); unbounded when absent. */
  readonly bodyBudget?: BodyBudget;
  /** A client that accepts no bytes of its answer for this long is cut (and its slot freed). */
  readonly clientStallTimeoutMs?: number;
  /**
   * The fleet's events: cold-load progress for streaming clients' keep-alive comments, and
   * health flips, which give up requests on a node that turned unhealthy (none without it).
   */
  readonly subscribe?: (listener: (event: FleetEvent) => void) => () => void;
  /** How often a waiting streaming client gets a keep-alive comment. */
  readonly feedbackEveryMs?: number;
}

const MODELS_PREFIX = "/v1/models/";

/** The model id of a `/v1/models/{id}` path, percent-decoded; null when it does not decode. */
const modelIdOf = (path: string): string | null => {
  try {
    return decodeURIComponent(path.slice(MODELS_PREFIX.length));
  } catch {
    return null;
  }
};

/** What a GET sends on: nothing. */
const NO_BODY = Buffer.alloc(0);

/** The largest request body cortex accepts, unless the options say otherwise (the neuron's). */
const BODY_LIMIT_BYTES = 20 * 2 ** 20;

export interface OpenAIRoutes {
  /**
   * `GET /v1/models` and `GET /v1/models/{id}` (and the key check for every other `/v1` path),
   * for the express app.
   */
  readonly router: Router;
  /**
   * The model-routed requests (http-kit's route table: `POST /v1/*`, `/rerank`, `/infill`,
   * `/completion`, `/v/*`, `GET /v1/audio/voices`), on plain node:http: the inference fast path.
   */
  readonly inference: FastHandler;
  /** Stops watching the fleet's health (cortex's stop). */
  readonly close: () => void;
}

/**
 * The OpenAI surface: `GET /v1/models[/{id}]` and every model-routed request (a JSON body, a
 * multipart upload, or a GET naming its model in the query). The body goes to the chosen neuron
 * as the client sent it (an alias replaced by the model's id in the model's own bytes, the
 * model's catalogue `filters` applied to a JSON body), with its query string and its headers but
 * for credentials, cookies and hop-by-hop ones; the answer streams back untouched.
 */
export const openAIRoutes = (options: OpenAIRoutesOptions): OpenAIRoutes => {
  const router = express.Router();
  const board = new LoadProgressBoard();
  options.subscribe?.(board.listener);
  const watch = options.subscribe
    ? new NodeWatch({ snapshot: options.snapshot(), subscribe: options.subscribe })
    : undefined;
  const attempts = {
    acquire: options.dispatcher.acquire.bind(options.dispatcher),
    tokenOf: options.tokenOf,
    suspect: options.suspect,
    ...(watch ? { watch } : {}),
    streamIdleTimeoutMs: options.streamIdleTimeoutMs,
    loadTimeoutMs: options.loadTimeoutMs,
    clientStallTimeoutMs: options.clientStallTimeoutMs ?? 0,
    filtersOf: (model: string) => options.catalogue().byId.get(model)?.filters,
  };
  /** What a waiting streaming client is told, every second. */
  const waitingFor = (requested: string): string => {
    const model = resolveModelName(options.catalogue(), requested)?.id ?? requested;
    return (
      board.describe(model) ??
      ((options.dispatcher.swaps.depths().get(model) ?? 0) > 0
        ? `waiting for busy models to be swapped out for ${model}`
        : options.dispatcher.admission.depth(model) > 0
          ? `waiting for a free slot on ${model}`
          : `loading ${model}`)
    );
  };
  router.use("/v1", requireClientKey(options.apiKeys));
  router.get("/v1/models", (_req, res) => {
    res.json(
      listModels(
        options.snapshot(),
        options.catalogue(),
        options.startedS,
        options.dispatcher.waiting(),
      ),
    );
  });
  // The rest of the path is the id, slashes included (`org/name` aliases), percent-decoded.
  router.get(/^\/v1\/models\/./, (req, res) => {
    const requested = modelIdOf(req.path);
    const model =
      requested === null
        ? undefined
        : findModel(
            options.snapshot(),
            options.catalogue(),
            options.startedS,
            options.dispatcher.waiting(),
            requested,
          );
    if (model === undefined)
      throw new CortexError(
        "model_not_found",
        `model "${requested ?? req.path.slice(MODELS_PREFIX.length)}" does not exist`,
        { param: "model" },
      );
    res.json(model);
  });

  const authorized = clientKeyCheck(options.apiKeys);
  const bodyLimit = options.bodyLimitBytes ?? BODY_LIMIT_BYTES;
  const inference = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Every answer carries its id, a refusal too.
    const requestId = assignRequestId(req, res);
    // Before anything is recorded: unauthenticated clients do not write to the request log.
    if (!authorized(req.headers)) throw wrongToken();
    const started = performance.now();
    const at = Date.now();
    const path = pathOf(req.url);
    let parsed: InferenceFields | undefined;
    let lease: Lease | undefined;
    let feedback: WaitFeedback | undefined;
    // Aborted when the client goes away: waiting and the neuron request both end then.
    const { signal: gone, release } = clientGone(res);
    const record = (status: number, fields: Partial<RequestRecord> = {}) =>
      options.record({
        requestId,
        at,
        model: lease?.model ?? parsed?.model ?? null,
        node: lease?.node ?? null,
        status,
        latencyMs: performance.now() - started,
        ttftMs: null,
        usage: null,
        stream: parsed?.stream ?? false,
        coldStart: lease?.coldStart ?? false,
        errorCode: null,
        ...fields,
      });
    try {
      checkPath(path);
      const url = req.url ?? path;
      // The fast path takes only model-routed requests; a versionless one goes on under /v1/,
      // with the query string as the client sent it.
      const routed = modelRoutePath(req.method, url);
      if (routed === null) throw new CortexError("not_found", "no model-routed path here");
      const target = forwardedUrl(url, routed);
      const get = modelInQuery(req.method);
      // Charged to the budget until the answer closes, waiting for a slot included.
      const body = get ? NO_BODY : await readBody(req, bodyLimit, options.bodyBudget?.charge(res));
      const fields = get ? queryFields(target) : requestFields(req.headers["content-type"], body);
      parsed = fields;
      // Streams that wait (cold load, admission queue, lazy reload) get keep-alive comments.
      if (fields.stream)
        feedback = new WaitFeedback(res, () => waitingFor(fields.model), options.feedbackEveryMs);
      const outcome = await proxyWithRetries(attempts, {
        res,
        method: get ? "GET" : "POST",
        path: target,
        body,
        fields,
        requestId,
        headers: outgoingHeaders(req, get ? null : fields),
        signal: gone,
        // Read from the body only if the model has replicas to choose between, and only once.
        affinityKey: once(() => affinityKeyOf(req.headers, body, fields)),
        onLease: (taken) => {
          lease = taken;
        },
        onResponse: () => feedback?.stop(),
      });
      record(outcome.status, {
        ttftMs: outcome.firstByteMs,
        usage: outcome.usage,
        errorCode: outcome.errorCode,
      });
    } catch (error) {
      if (gone.aborted) {
        record(499);
        return;
      }
      const code = error instanceof ApiError ? error.code : "internal_error";
      record(error instanceof ApiError ? statusOf(error) : 500, { errorCode: code });
      if (res.headersSent && isEventStream(res) && !res.writableEnded) {
        // The stream is open (200 sent with keep-alive comments, or a failed try's head): the
        // error goes in it, as OpenAI's streams carry one, which the official clients raise.
        endWithErrorEvent(res, code, error instanceof ApiError ? error.message : "internal error");
        return;
      }
      throw error;
    } finally {
      feedback?.stop();
      release();
    }
  };
  return { router, inference, close: () => watch?.close() };
};

const statusOf = (error: ApiError): number => ERROR_CODES[error.code].status;

/** The client's headers for the neuron, with the body's content type (`fields`) unless a GET. */
const outgoingHeaders = (req: IncomingMessage, fields: InferenceFields | null) => {
  // forwardedHeaders returns a fresh object: the content type goes in it, with no second copy.
  const headers = forwardedHeaders(req.headers);
  if (fields !== null) headers["content-type"] = forwardedType(fields, req.headers["content-type"]);
  return headers;
};
