import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import { type Abortable, post, proxyAgents, targetOf } from "@cortex/http-kit";

// The hop of `/upstream/<model>/…` to a harness: any method with the headers the handler chose
// (the answer goes back with http-kit's `relayAnswer`).

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
