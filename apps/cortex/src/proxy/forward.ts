import type {
  ClientRequest,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from "node:http";
import {
  type Abortable,
  ClientSignal,
  pipeBody,
  post,
  proxyAgents,
  targetOf,
  UpstreamFailure,
} from "@cortex/http-kit";
import { AnswerTail, type Usage } from "./answer-tail.js";

export { AnswerTail, type Usage, usageOf } from "./answer-tail.js";

// Streams one client request to a neuron and the answer back, chunk by chunk, never buffering
// a stream, on plain node:http with a keep-alive agent (the hot path; see docs/contract.md).
// The client's headers go on but for its credentials, cookies and hop-by-hop headers
// (http-kit `forwardedHeaders`); the neuron's token and cortex's request id are added. Of the answer's
// headers only those that describe the body come back.

/**
 * Sockets per neuron: as many as a neuron accepts by default (`max_connections`, 10,000), so
 * long-lived streams never wait in the agent for one another (issue 21: with 4,096, the
 * 4,097th open stream to a neuron waited for the first to end). The neuron refuses beyond its
 * own limit, and each model's `max_concurrency` bounds what runs.
 */
const agents = proxyAgents(10_000);

/** Upstream answer headers worth passing to the client. */
const PASSED_HEADERS = [
  "content-type",
  "content-length",
  "cache-control",
  "x-accel-buffering",
  "retry-after",
];

/**
 * The neuron answered nothing. `retryable` when the request never reached it (connection
 * refused, host unreachable, connect timeout, a reset kept-alive socket): another replica may
 * take it. A reset of a fresh connection is not retried, since the neuron may have started on it.
 */
export class UpstreamConnectError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, retryable: boolean, cause: unknown) {
    super(`could not reach the neuron (${code})`, { cause });
    this.name = "UpstreamConnectError";
    this.code = code;
    this.retryable = retryable;
  }
}

/** The neuron accepted the request but stopped answering for longer than the idle timeout. */
export class UpstreamTimeoutError extends Error {
  constructor(cause: unknown) {
    super("the neuron stopped answering", { cause });
    this.name = "UpstreamTimeoutError";
  }
}

/** The request was given up before any answer (`abandon` aborted: its node turned unhealthy). */
export class UpstreamAbandonedError extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : "the request was given up", { cause });
    this.name = "UpstreamAbandonedError";
  }
}

/** How an answer that had started broke off: reset, silent for the idle timeout, given up. */
export type BrokenCause = "reset" | "timeout" | "abandoned";

export interface ForwardResult {
  readonly status: number;
  /** Milliseconds from sending to the first body byte; null when there was no body. */
  readonly firstByteMs: number | null;
  readonly usage: Usage | null;
  /** The client went away before the answer was complete (the upstream request was aborted). */
  readonly aborted: boolean;
  /**
   * The answer broke off after it started (null: it did not). `res` is then left to the caller:
   * not ended, and, unless `delivered`, with nothing of this answer in it (a stream's head may
   * have gone out, which another answer may continue).
   */
  readonly broken: BrokenCause | null;
  /** Bytes of the answer's body reached the client: a retry would repeat what it saw. */
  readonly delivered: boolean;
}

export interface ForwardOptions {
  /** POST unless the request names its model in the query (`GET /v1/audio/voices`). */
  readonly method?: "GET" | "POST";
  /** The neuron's base URL (as configured) and the client's path below it. */
  readonly baseUrl: string;
  readonly path: string;
  readonly body: Buffer | string;
  readonly token: string;
  readonly requestId: string;
  /** The client's headers to pass on (`forwardedHeaders`): no credentials, no hop-by-hop ones. */
  readonly headers: OutgoingHttpHeaders;
  /** No byte for this long (before or during the answer) fails the request; never a total limit. */
  readonly idleTimeoutMs: number;
  readonly signal: Abortable;
  /** Gives the request up (its node turned unhealthy): before the answer it rejects, during it
   * the answer breaks off as `abandoned`. */
  readonly abandon?: Abortable;
  /** A client that accepts no bytes of the answer for this long is cut (0: never). */
  readonly stallTimeoutMs?: number;
  /** Called when the neuron's answer starts, before anything of it is written. */
  readonly onResponse?: () => void;
  /** Called for every chunk of the answer's body, as it arrives. */
  readonly onChunk?: () => void;
}

const aborted: ForwardResult = {
  status: 0,
  firstByteMs: null,
  usage: null,
  aborted: true,
  broken: null,
  delivered: false,
};

/** One signal for the upstream request: the client went away, or the request was given up. */
const eitherSignal = (client: Abortable, abandon: Abortable | undefined) => {
  if (abandon === undefined) return { signal: client, dispose: () => {} };
  const signal = new ClientSignal();
  const onClient = () => signal.abort(client.reason);
  const onAbandon = () => signal.abort(abandon.reason);
  if (client.aborted) onClient();
  else if (abandon.aborted) onAbandon();
  client.addEventListener("abort", onClient, { once: true });
  abandon.addEventListener("abort", onAbandon, { once: true });
  return {
    signal,
    dispose: () => {
      client.removeEventListener("abort", onClient);
      abandon.removeEventListener("abort", onAbandon);
    },
  };
};

/**
 * Forwards the request and pipes the answer into `res`. Rejects while the neuron has not
 * answered: with UpstreamConnectError when the connection failed, UpstreamTimeoutError when
 * nothing came within the idle timeout, UpstreamAbandonedError when `abandon` aborted. Once the
 * answer has started, a failure resolves with `broken` and leaves `res` to the caller (an error
 * event for a stream, a cut connection otherwise, or another try when nothing was delivered).
 */
export const forward = async (
  res: ServerResponse,
  options: ForwardOptions,
): Promise<ForwardResult> => {
  const either = eitherSignal(options.signal, options.abandon);
  try {
    return await forwardOnce(res, options, either.signal);
  } finally {
    either.dispose();
  }
};

const forwardOnce = async (
  res: ServerResponse,
  options: ForwardOptions,
  signal: Abortable,
): Promise<ForwardResult> => {
  const started = performance.now();
  const headers: OutgoingHttpHeaders = { ...options.headers, "x-request-id": options.requestId };
  if (options.method !== "GET") headers["content-type"] ??= "application/json";
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let response: IncomingMessage;
  let request: ClientRequest;
  try {
    ({ response, request } = await post({
      ...(options.method ? { method: options.method } : {}),
      target: targetOf(options.baseUrl),
      path: options.path,
      agents,
      headers,
      body: options.body,
      signal,
      connectTimeoutMs: 5000,
      idleTimeoutMs: options.idleTimeoutMs,
    }));
  } catch (error) {
    if (options.signal.aborted) return aborted;
    if (options.abandon?.aborted) throw new UpstreamAbandonedError(options.abandon.reason);
    if (!(error instanceof UpstreamFailure)) throw error;
    if (error.idle) throw new UpstreamTimeoutError(error);
    throw new UpstreamConnectError(error.code, error.neverArrived, error);
  }
  // The idle timeout destroys the request with its UpstreamFailure; the answer sees a reset.
  let idle = false;
  request.on("error", (error) => {
    if (error instanceof UpstreamFailure && error.idle) idle = true;
  });
  options.onResponse?.();
  const status = response.statusCode ?? 502;
  // The client's stream was already started (keep-alive comments during a cold load, or an
  // earlier try's head): an error answer is then relayed as one SSE error event, from its body.
  const relayError = res.headersSent && status >= 400;
  // A stream's headers go out at once; a sized body carries them with its first bytes.
  const flushHeaders = !res.headersSent && response.headers["content-length"] === undefined;
  // Set, not written: until the first byte leaves, another try may still replace them.
  if (!res.headersSent) {
    res.statusCode = status;
    for (const name of PASSED_HEADERS) {
      const value = response.headers[name];
      if (value === undefined) res.removeHeader(name);
      else res.setHeader(name, value);
    }
  }
  let firstByteMs: number | null = null;
  // OpenAI answers put usage last, in a JSON body and in the final chunk of a stream alike.
  // An error relayed into a started stream needs its whole body; any other answer its usage.
  const tail = new AnswerTail(relayError);
  const complete = await pipeBody(response, res, {
    discard: relayError,
    flushHeaders,
    stallTimeoutMs: options.stallTimeoutMs ?? 0,
    onChunk: (chunk) => {
      if (firstByteMs === null) firstByteMs = performance.now() - started;
      options.onChunk?.();
      tail.push(chunk);
    },
  });
  if (!complete) {
    if (options.signal.aborted) return { ...aborted, status, firstByteMs };
    const delivered = firstByteMs !== null && !relayError;
    // Nothing of it went out: the status and headers are the next try's, or the error's.
    if (!res.headersSent) {
      res.statusCode = 200;
      for (const name of PASSED_HEADERS) res.removeHeader(name);
    }
    const broken: BrokenCause = options.abandon?.aborted ? "abandoned" : idle ? "timeout" : "reset";
    return { status, firstByteMs, usage: null, aborted: false, broken, delivered };
  }
  if (relayError) res.end(`data: ${tail.text().trim()}\n\n`);
  return {
    status,
    firstByteMs,
    usage: status < 400 ? tail.usage() : null,
    aborted: false,
    broken: null,
    delivered: firstByteMs !== null,
  };
};
