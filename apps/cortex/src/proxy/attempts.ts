import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import {
  type Abortable,
  ApiError,
  type InferenceFields,
  urlWithModel,
  withModel,
} from "@cortex/http-kit";
import { type ErrorCode, errorEnvelope, type RequestFilters } from "@cortex/protocol";
import { CortexError } from "../errors.js";
import type { AffinityKey, Lease } from "../router/lease.js";
import { applyFilters, hasFilters } from "./filters.js";
import {
  type ForwardOptions,
  type ForwardResult,
  forward,
  UpstreamAbandonedError,
  UpstreamConnectError,
  UpstreamTimeoutError,
  type Usage,
} from "./forward.js";
import type { Watched } from "./node-watch.js";

// One client request through cortex: a lease on a replica, the hop to its neuron, and what to do
// when that fails. A request that never reached a neuron is tried elsewhere (twice at most); one
// that may have (a reset, a timeout, its node given up) once, and only while nothing of its
// answer reached the client. After that, a stream ends with an OpenAI error event and any other
// answer is cut. Every try reports its own outcome to its replica's circuit, once.

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The replicas excluded before any try failed: none (shared, never written). */
const NONE_EXCLUDED: ReadonlySet<string> = new Set();

/** Tries other replicas this many times when a request never reached its neuron. */
const CONNECT_RETRIES = 2;

export interface AttemptOptions {
  readonly acquire: (
    model: string,
    signal: Abortable,
    excluded: ReadonlySet<string>,
    affinityKey: AffinityKey | undefined,
  ) => Promise<Lease>;
  /** The neuron token to send to `node`. */
  readonly tokenOf: (node: string) => string;
  /** A request to the node failed to connect or timed out: mark it suspect and poll it now. */
  readonly suspect: (node: string, why: string) => void;
  /** Gives up requests on nodes that turn unhealthy; none are given up without it. */
  readonly watch?: { readonly watch: (node: string) => Watched };
  readonly streamIdleTimeoutMs: number;
  readonly loadTimeoutMs: number;
  readonly clientStallTimeoutMs: number;
  /** The catalogue `filters` of a model, applied to its JSON bodies; none without this. */
  readonly filtersOf?: (model: string) => RequestFilters | undefined;
  /** The hop to the neuron; tests script it. */
  readonly forward?: (res: ServerResponse, options: ForwardOptions) => Promise<ForwardResult>;
}

export interface ProxyCall {
  readonly res: ServerResponse;
  /** POST unless the model came from the query (`GET /v1/audio/voices`). */
  readonly method?: "GET" | "POST";
  /** The path the neuron gets, with the client's query string. */
  readonly path: string;
  readonly body: Buffer;
  readonly fields: InferenceFields;
  readonly requestId: string;
  /** The client's headers to pass on (`forwardedHeaders`). */
  readonly headers: OutgoingHttpHeaders;
  /** The client went away. */
  readonly signal: Abortable;
  readonly affinityKey: AffinityKey | undefined;
  /** Each lease as it is taken; the last one served (or failed) the request. */
  readonly onLease: (lease: Lease) => void;
  /** The neuron's answer starts. */
  readonly onResponse?: () => void;
}

/** A request that was answered, for the request log. */
export interface ProxyOutcome {
  /** The status answered; 499 when the client went away, 502 when it broke off after bytes. */
  readonly status: number;
  readonly firstByteMs: number | null;
  readonly usage: Usage | null;
  readonly errorCode: ErrorCode | null;
}

/** A try that failed, and what follows from it. */
interface Failure {
  /** The request never reached the neuron (connection refused, unreachable, connect timeout). */
  readonly unreached: boolean;
  /** Bytes of the answer reached the client: no other try may follow. */
  readonly delivered: boolean;
  /** Why the node is suspect now; null when this failure says nothing new about the node. */
  readonly suspect: string | null;
  /** What the client is told when no other try follows. */
  readonly error: CortexError;
}

const TIMED_OUT = "a request timed out";

/** What a failed try means; `givenUpFor` is why its node's watch gave it up, if it did. */
const failureOf = (error: unknown, model: string, givenUpFor: unknown): Failure => {
  if (error instanceof UpstreamConnectError)
    return {
      unreached: error.retryable,
      delivered: false,
      suspect: `a request failed (${error.code})`,
      error: new CortexError(
        "upstream_error",
        `could not reach a neuron serving "${model}" (${error.code}); retry shortly`,
        { retryAfterS: 1 },
      ),
    };
  if (error instanceof UpstreamTimeoutError)
    return {
      unreached: false,
      delivered: false,
      suspect: TIMED_OUT,
      error: stoppedAnswering(model),
    };
  if (error instanceof UpstreamAbandonedError)
    return {
      unreached: false,
      delivered: false,
      suspect: null,
      error: givenUp(model, givenUpFor),
    };
  throw error;
};

const brokenFailure = (result: ForwardResult, model: string, givenUpFor: unknown): Failure => {
  const delivered = result.delivered;
  switch (result.broken) {
    case "timeout":
      return { unreached: false, delivered, suspect: TIMED_OUT, error: stoppedAnswering(model) };
    case "abandoned":
      return { unreached: false, delivered, suspect: null, error: givenUp(model, givenUpFor) };
    default:
      // A reset mid-answer may be the neuron's own doing (its harness died): only one before
      // any byte of the answer makes the node suspect.
      return {
        unreached: false,
        delivered,
        suspect: delivered ? null : "a request failed (answer reset)",
        error: new CortexError(
          "upstream_error",
          `the answer from the neuron serving "${model}" broke off; retry shortly`,
          { retryAfterS: 1 },
        ),
      };
  }
};

const stoppedAnswering = (model: string) =>
  new CortexError("upstream_timeout", `the neuron serving "${model}" stopped answering`, {
    retryAfterS: 5,
  });

/** The node's watch gave the request up: `why` says which node turned unhealthy, and why. */
const givenUp = (model: string, why: unknown) =>
  new CortexError(
    "upstream_error",
    `${why instanceof Error ? `${why.message}: ` : ""}the neuron serving "${model}" went silent there; retry shortly`,
    { retryAfterS: 1 },
  );

/** Whether the answer under way (or its head, sent) is a server-sent event stream. */
export const isEventStream = (res: ServerResponse): boolean =>
  String(res.getHeader("content-type") ?? "").startsWith("text/event-stream");

/**
 * Ends an event stream with an OpenAI error event, which the official clients raise. The blank
 * line first ends an event cut short after its data line; SSE readers skip an empty one.
 */
export const endWithErrorEvent = (res: ServerResponse, code: ErrorCode, message: string): void => {
  res.end(`\ndata: ${JSON.stringify(errorEnvelope(code, message))}\n\n`);
};

/** What goes to the neuron once a lease names the model: the path and body for it. */
interface Outgoing {
  readonly model: string;
  readonly path: string;
  readonly body: Buffer;
}

/**
 * The request for `model`: an alias replaced by the model's id where the client named it (the
 * body's JSON string or form field, or the query parameter), then the model's filters applied to
 * a JSON body. A request that names the model by its id and has no filters goes as it came:
 * the same buffer, no copy.
 */
const outgoingFor = (
  call: ProxyCall,
  model: string,
  filters: RequestFilters | undefined,
): Outgoing => {
  const { fields } = call;
  if (model === fields.model && !hasFilters(filters))
    return { model, path: call.path, body: call.body };
  const aliased = model !== fields.model;
  let body = aliased ? withModel(call.body, fields, model) : call.body;
  if (fields.kind === "json" && hasFilters(filters)) body = applyFilters(body, filters);
  return { model, path: aliased ? urlWithModel(call.path, fields, model) : call.path, body };
};

/**
 * Serves one request through a replica and its neuron, trying other replicas as above. Resolves
 * with what was answered; rejects with a CortexError when no answer could be had and nothing
 * of one was sent (the caller writes the envelope, or the error event in a stream it started),
 * or with the signal's reason.
 */
export const proxyWithRetries = async (
  options: AttemptOptions,
  call: ProxyCall,
): Promise<ProxyOutcome> => {
  const hop = options.forward ?? forward;
  const { res, fields } = call;
  // Made at the first failed try only: most requests never exclude a replica.
  let excluded: Set<string> | undefined;
  let unreachedRetries = 0;
  let resent = false;
  let last: Failure | undefined;
  // Built for the first lease, and again only if a later one serves another model.
  let outgoing: Outgoing | undefined;
  for (;;) {
    let lease: Lease;
    try {
      lease = await options.acquire(
        fields.model,
        call.signal,
        excluded ?? NONE_EXCLUDED,
        call.affinityKey,
      );
    } catch (error) {
      // No replica for another try: the client hears what went wrong with the last one.
      if (last !== undefined && error instanceof ApiError && !call.signal.aborted) throw last.error;
      throw error;
    }
    call.onLease(lease);
    // Who served, whether it waited for a load, and how long it waited: on every answer whose
    // headers are still to go (a stream kept alive while it waited sent them then).
    if (!res.headersSent) {
      res.setHeader("x-cortex-node", lease.node);
      res.setHeader("x-cortex-cold-start", String(lease.coldStart));
      res.setHeader("x-cortex-queue-ms", String(Math.round(lease.waitedMs)));
    }
    const watched = options.watch?.watch(lease.node);
    /** Reports a failed try and suspects its node, before its slot is released. */
    const settle = (failure: Failure): Failure => {
      lease.report(false);
      if (failure.suspect !== null) options.suspect(lease.node, failure.suspect);
      return failure;
    };
    let failure: Failure;
    let firstByteMs: number | null = null;
    try {
      if (outgoing?.model !== lease.model)
        outgoing = outgoingFor(call, lease.model, options.filtersOf?.(lease.model));
      // One object, filled in place: the optional members are set only when present.
      const hopOptions: Mutable<ForwardOptions> = {
        baseUrl: lease.url,
        path: outgoing.path,
        body: outgoing.body,
        token: options.tokenOf(lease.node),
        requestId: call.requestId,
        headers: call.headers,
        // An unloaded model answers only once its neuron has reloaded it.
        idleTimeoutMs: lease.coldStart ? options.loadTimeoutMs : options.streamIdleTimeoutMs,
        signal: call.signal,
        stallTimeoutMs: options.clientStallTimeoutMs,
      };
      if (call.method === "GET") hopOptions.method = "GET";
      if (watched) {
        hopOptions.abandon = watched.signal;
        hopOptions.onChunk = watched.activity;
      }
      if (call.onResponse) hopOptions.onResponse = call.onResponse;
      const result = await hop(res, hopOptions);
      if (result.broken === null) {
        // A harness that answered 5xx counts against its replica; a client gone says nothing.
        if (!result.aborted) lease.report(result.status < 500);
        return {
          status: result.aborted ? 499 : result.status,
          firstByteMs: result.firstByteMs,
          usage: result.usage,
          errorCode: null,
        };
      }
      firstByteMs = result.firstByteMs;
      failure = settle(brokenFailure(result, lease.model, watched?.signal.reason));
    } catch (error) {
      failure = settle(failureOf(error, lease.model, watched?.signal.reason));
    } finally {
      watched?.close();
      lease.release();
    }
    if (failure.delivered) {
      // The client saw part of this answer: a stream says why it ends, anything else is cut.
      if (isEventStream(res) && !res.writableEnded)
        endWithErrorEvent(res, failure.error.code, failure.error.message);
      else res.destroy();
      return {
        status: 502,
        firstByteMs,
        usage: null,
        errorCode: failure.error.code,
      };
    }
    last = failure;
    const again = failure.unreached ? unreachedRetries < CONNECT_RETRIES : !resent;
    if (!again) throw failure.error;
    if (failure.unreached) unreachedRetries += 1;
    else resent = true;
    excluded ??= new Set();
    excluded.add(lease.node);
  }
};
