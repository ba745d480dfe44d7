import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import {
  type Abortable,
  passHeaders,
  pipeBody,
  post,
  proxyAgents,
  targetOf,
  UpstreamFailure,
} from "@cortex/http-kit";
import { NeuronError } from "../errors.js";

// Streams one inference request to a harness and its answer back, chunk by chunk, on plain
// node:http with a keep-alive agent (the hot path; DESIGN.md's latency budget). The client's
// headers go on as http-kit's `forwardedHeaders` leaves them (no credential, the neuron's token
// included, no cookie, no hop-by-hop header), with its query string. Only the harness's own
// headers that describe the body come back; hop-by-hop headers do not.

const agents = proxyAgents(1024);

const PASSED_HEADERS = ["content-type", "content-length", "cache-control", "x-accel-buffering"];

/** A harness that accepted the request never times out on its own: the client decides. */
const NO_IDLE_LIMIT_MS = 0;

/** One request for a harness: what the client sent, on the path the route table gave it. */
export interface HarnessRequest {
  readonly method: "GET" | "POST";
  /** The path below the harness's base URL, with the client's query string. */
  readonly url: string;
  /** The client's headers to pass on (`forwardedHeaders`), its content type among them. */
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer;
}

export interface ForwardOptions {
  /** A client that accepts none of its answer for this long is cut (0: never). */
  readonly stallTimeoutMs?: number;
  /** Called for every chunk of the answer passed on: the harness is alive and streaming. */
  readonly onBytes?: () => void;
}

/**
 * Forwards `request` to `${baseUrl}${request.url}` and pipes the answer into `res`. Resolves
 * when the answer is complete or the client has gone (the upstream request is then aborted).
 * Rejects with a NeuronError only while nothing has been sent, so the caller can still answer
 * 502: a harness killed meanwhile (a crash, or liveness giving up on it) resets the connection,
 * which is that 502 at once.
 */
export const forward = async (
  baseUrl: string,
  request: HarnessRequest,
  res: ServerResponse,
  signal: Abortable,
  options: ForwardOptions = {},
): Promise<void> => {
  let response: IncomingMessage;
  try {
    ({ response } = await post({
      method: request.method,
      target: targetOf(baseUrl),
      path: request.url,
      agents,
      headers: request.headers,
      body: request.body,
      signal,
      connectTimeoutMs: 5000,
      idleTimeoutMs: NO_IDLE_LIMIT_MS,
    }));
  } catch (error) {
    if (signal.aborted) return;
    const code = error instanceof UpstreamFailure ? error.code : "error";
    throw new NeuronError("upstream_error", `the model server did not answer (${code})`, {
      cause: error,
      retryAfterS: 1,
    });
  }
  const status = response.statusCode ?? 502;
  res.writeHead(status, passHeaders(response, PASSED_HEADERS));
  // A stream's headers go out at once; a sized body carries them with its first bytes.
  const complete = await pipeBody(response, res, {
    flushHeaders: response.headers["content-length"] === undefined,
    stallTimeoutMs: options.stallTimeoutMs ?? 0,
    ...(options.onBytes ? { onChunk: options.onBytes } : {}),
  });
  // Bytes already reached the client: the only honest signal left is a cut connection.
  if (!complete && !signal.aborted) res.destroy();
};
