import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import {
  type Abortable,
  answerHeaders,
  pipeBody,
  post,
  proxyAgents,
  targetOf,
} from "@cortex/http-kit";

// The hop of `/upstream/<model>/…` to a harness: any method with the headers the handler chose,
// and the answer streamed back with the harness's headers but for hop-by-hop ones and cookies
// (http-kit's `answerHeaders`).

const agents = proxyAgents(1024);

/** A harness that accepted the request never times out on its own: the caller decides. */
const NO_IDLE_LIMIT_MS = 0;

export interface HopRequest {
  readonly baseUrl: string;
  readonly method: string;
  /** The harness's path, with the query string. */
  readonly path: string;
  /** Everything to send but `content-length`, which goes with every body (and every method but GET and HEAD). */
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer;
  /** The caller went away: the request is destroyed (before the answer it rejects). */
  readonly signal: Abortable;
  readonly connectTimeoutMs: number;
}

/**
 * Sends the request and resolves with the answer's head once it arrives. A harness that
 * accepted the request never times out on its own (as on the inference path): the caller
 * decides. Rejects with an UpstreamFailure when no answer came, or with the signal's reason.
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
      idleTimeoutMs: NO_IDLE_LIMIT_MS,
    })
  ).response;

/**
 * Answers `res` with the harness's status, its headers as `answerHeaders` keeps them and its
 * body, streamed with backpressure; `onChunk` sees every chunk. Resolves true when the whole
 * answer went out; on false (it broke off, or the caller left) `res` is left to the caller.
 */
export const relayAnswer = (
  response: IncomingMessage,
  res: ServerResponse,
  stallTimeoutMs: number,
  onChunk?: () => void,
): Promise<boolean> => {
  res.writeHead(response.statusCode ?? 502, answerHeaders(response.headers));
  // A stream's head goes out at once; a sized body carries it with its first bytes.
  return pipeBody(response, res, {
    flushHeaders: response.headers["content-length"] === undefined,
    stallTimeoutMs,
    ...(onChunk ? { onChunk } : {}),
  });
};
