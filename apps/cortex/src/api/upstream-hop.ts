import type {
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from "node:http";
import {
  type Abortable,
  answerHeaders as passedOn,
  post,
  proxyAgents,
  relayAnswer,
  targetOf,
} from "@cortex/http-kit";

// The hop of `/upstream/{model}/…` to the neuron: any method, the body cortex has read, and the
// answer streamed back with the harness's own headers but for those that belong to the hop,
// cookies, and CORS (cortex's own policy decides that).

const agents = proxyAgents(1024);

/** CORS is cortex's own policy, and the request id it answers with is its own. */
const droppedByCortex = (name: string): boolean =>
  name === "x-request-id" || name.startsWith("access-control-");

/**
 * The harness's answer headers (as the neuron relayed them) to send to the client: http-kit's
 * `answerHeaders` (no hop-by-hop header, no cookie), and neither `access-control-*` (a
 * harness's `Access-Control-Allow-Origin: *` would overrule `cors_origins`) nor `x-request-id`
 * (cortex answers with its own).
 */
export const answerHeaders = (headers: IncomingHttpHeaders): OutgoingHttpHeaders =>
  passedOn(headers, droppedByCortex);

export interface HopRequest {
  readonly baseUrl: string;
  readonly method: string;
  /** The neuron's path, with the query string. */
  readonly path: string;
  /** Everything to send but `content-length`, which goes with every body (and every method but GET and HEAD). */
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer;
  /** The client went away: the request is destroyed (before the answer it rejects). */
  readonly signal: Abortable;
  readonly connectTimeoutMs: number;
  /** No byte for this long, before or during the answer, fails it; never a total limit. */
  readonly idleTimeoutMs: number;
}

/**
 * Sends the request and resolves with the answer's head once it arrives. Rejects with an
 * UpstreamFailure when no answer came (`neverArrived` when the request cannot have reached the
 * neuron, `idle` when it went silent), or with the signal's reason when it aborted first.
 */
export const sendHop = async (options: HopRequest): Promise<IncomingMessage> =>
  (
    await post({
      method: options.method,
      target: targetOf(options.baseUrl),
      path: options.path,
      agents,
      headers: options.headers,
      body: options.body,
      signal: options.signal,
      connectTimeoutMs: options.connectTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
    })
  ).response;

/** How relaying an answer went. */
export interface Relayed {
  /** The whole answer reached `res` (false: it broke off, or the client left). */
  readonly complete: boolean;
  /** Milliseconds from `startedMs` to the first body byte; null when there was none. */
  readonly firstByteMs: number | null;
}

/**
 * Answers `res` with the neuron's status, its headers as `answerHeaders` keeps them (added to
 * those `res` has: the request id, the routing headers) and its body, streamed with
 * backpressure (http-kit's `relayAnswer`). A client that accepts nothing for `stallTimeoutMs`
 * is cut.
 */
export const relayToClient = async (
  response: IncomingMessage,
  res: ServerResponse,
  startedMs: number,
  stallTimeoutMs: number,
): Promise<Relayed> => {
  let firstByteMs: number | null = null;
  const complete = await relayAnswer(response, res, {
    stallTimeoutMs,
    dropped: droppedByCortex,
    onChunk: () => {
      firstByteMs ??= performance.now() - startedMs;
    },
  });
  return { complete, firstByteMs };
};
