import type { Catalogue } from "@cortex/catalogue";
import { resolveModelName } from "@cortex/catalogue";
import { requireBearer } from "@cortex/http-kit";
import {
  ERROR_CODES,
  type ErrorCode,
  errorEnvelope,
  type FleetEvent,
  type FleetSnapshot,
} from "@cortex/protocol";
import express, { type Router } from "express";
import { CortexError } from "../errors.js";
import {
  forward,
  UpstreamConnectError,
  UpstreamTimeoutError,
  type Usage,
} from "../proxy/forward.js";
import type { Dispatcher, Lease } from "../router/dispatcher.js";
import { listModels } from "./models-list.js";
import { requestIdOf } from "./request-id.js";
import { LoadProgressBoard, WaitFeedback } from "./wait-feedback.js";

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
  /** Asks the poller to look at a node now (it refused a connection). */
  readonly refresh: (node: string) => void;
  readonly streamIdleTimeoutMs: number;
  readonly loadTimeoutMs: number;
  readonly record: (record: RequestRecord) => void;
  readonly startedS: number;
  readonly bodyLimit?: string;
  /** The fleet's events, for cold-load progress in streaming clients' keep-alive comments. */
  readonly subscribe?: (listener: (event: FleetEvent) => void) => () => void;
  /** How often a waiting streaming client gets a keep-alive comment. */
  readonly feedbackEveryMs?: number;
}

interface Parsed {
  readonly model: string;
  readonly json: Record<string, unknown>;
  readonly stream: boolean;
}

/** Reads `model` (and `stream`) from a raw JSON body; the body itself is forwarded as sent. */
const parseInference = (body: unknown): Parsed => {
  if (!Buffer.isBuffer(body) || body.length === 0)
    throw new CortexError(
      "invalid_request_error",
      "the request body must be a JSON object with a model",
    );
  let json: unknown;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch {
    throw new CortexError("invalid_request_error", "the request body is not valid JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new CortexError("invalid_request_error", "the request body must be a JSON object");
  const { model, stream } = json as { model?: unknown; stream?: unknown };
  if (model === undefined || model === null || model === "")
    throw new CortexError(
      "missing_model",
      "the request body has no model: say which model should answer",
      {
        param: "model",
      },
    );
  if (typeof model !== "string")
    throw new CortexError("invalid_request_error", "model must be a string", { param: "model" });
  return { model, json: json as Record<string, unknown>, stream: stream === true };
};

/**
 * Refuses dot segments (raw or percent-encoded) and encoded slashes: the URL parser on the way
 * to the neuron would resolve `/v1/../models/load` into the neuron's admin API.
 */
const checkPath = (path: string): void => {
  for (const segment of path.split("/")) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      decoded = "..";
    }
    if (decoded === "." || decoded === ".." || /[/\\\0]/.test(decoded))
      throw new CortexError(
        "invalid_request_error",
        "the path may not contain . or .. segments or encoded slashes",
      );
  }
};

/** Tries other replicas this many times when a neuron refuses the connection. */
const CONNECT_RETRIES = 2;

/**
 * The OpenAI surface: `GET /v1/models` and every `POST /v1/*` that names a model. The body goes
 * to the chosen neuron as the client sent it (re-serialised only to replace an alias by the
 * model's id); the answer streams back untouched.
 */
export const openAIRoutes = (options: OpenAIRoutesOptions): Router => {
  const router = express.Router();
  const board = new LoadProgressBoard();
  options.subscribe?.(board.listener);
  /** What a waiting streaming client is told, every second. */
  const waitingFor = (requested: string): string => {
    const model = resolveModelName(options.catalogue(), requested)?.id ?? requested;
    return (
      board.describe(model) ??
      (options.dispatcher.admission.depth(model) > 0
        ? `waiting for a free slot on ${model}`
        : `loading ${model}`)
    );
  };
  router.use("/v1", requireBearer(options.apiKeys));
  router.get("/v1/models", (_req, res) => {
    res.json(listModels(options.snapshot(), options.catalogue(), options.startedS));
  });

  router.post(
    /^\/v1\/.+/,
    express.raw({ type: () => true, limit: options.bodyLimit ?? "50mb" }),
    async (req, res) => {
      const started = performance.now();
      const at = Date.now();
      let parsed: Parsed | undefined;
      let lease: Lease | undefined;
      let feedback: WaitFeedback | undefined;
      const controller = new AbortController();
      const onClose = () => {
        if (!res.writableFinished) controller.abort(new Error("client disconnected"));
      };
      res.on("close", onClose);
      const record = (status: number, fields: Partial<RequestRecord> = {}) =>
        options.record({
          requestId: requestIdOf(res),
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
        checkPath(req.path);
        parsed = parseInference(req.body);
        const requested = parsed.model;
        // Streams that wait (cold load, admission queue, lazy reload) get keep-alive comments.
        if (parsed.stream)
          feedback = new WaitFeedback(res, () => waitingFor(requested), options.feedbackEveryMs);
        const excluded = new Set<string>();
        for (let attempt = 0; ; attempt += 1) {
          lease = await options.dispatcher.acquire(parsed.model, controller.signal, excluded);
          try {
            const body =
              lease.model === parsed.model
                ? (req.body as Buffer)
                : JSON.stringify({ ...parsed.json, model: lease.model });
            const result = await forward(res, {
              url: `${lease.url}${req.path}`,
              body,
              token: options.tokenOf(lease.node),
              requestId: requestIdOf(res),
              accept: req.headers.accept,
              // An unloaded model answers only once its neuron has reloaded it.
              idleTimeoutMs: lease.coldStart ? options.loadTimeoutMs : options.streamIdleTimeoutMs,
              signal: controller.signal,
              onResponse: () => feedback?.stop(),
            });
            record(result.aborted ? 499 : result.broken ? 502 : result.status, {
              ttftMs: result.firstByteMs,
              usage: result.usage,
            });
            return;
          } catch (error) {
            if (
              error instanceof UpstreamConnectError &&
              error.retryable &&
              attempt < CONNECT_RETRIES
            ) {
              excluded.add(lease.node);
              options.refresh(lease.node);
              continue;
            }
            if (error instanceof UpstreamConnectError) {
              options.refresh(lease.node);
              throw new CortexError(
                "upstream_error",
                `could not reach a neuron serving "${lease.model}" (${error.code}); retry shortly`,
                { retryAfterS: 1 },
              );
            }
            if (error instanceof UpstreamTimeoutError)
              throw new CortexError(
                "upstream_timeout",
                `the neuron serving "${lease.model}" stopped answering`,
                { retryAfterS: 5 },
              );
            throw error;
          } finally {
            lease.release();
          }
        }
      } catch (error) {
        if (controller.signal.aborted) {
          record(499);
          return;
        }
        const code = error instanceof CortexError ? error.code : "internal_error";
        record(error instanceof CortexError ? statusOf(error) : 500, { errorCode: code });
        if (feedback?.started && !res.writableEnded) {
          // The stream is open (200 sent with keep-alive comments): the error goes in it, as
          // OpenAI's streams carry one, which the official clients raise.
          const message = error instanceof CortexError ? error.message : "internal error";
          res.end(`data: ${JSON.stringify(errorEnvelope(code, message))}\n\n`);
          return;
        }
        throw error;
      } finally {
        feedback?.stop();
        res.off("close", onClose);
      }
    },
  );
  return router;
};

const statusOf = (error: CortexError): number => ERROR_CODES[error.code].status;
