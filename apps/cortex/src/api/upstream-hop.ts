import {
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";
import { request as httpsRequest } from "node:https";
import { type Abortable, pipeBody, proxyAgents, targetOf, UpstreamFailure } from "@cortex/http-kit";

// The hop of `/upstream/{model}/…` to the neuron: any method (http-kit's `post` sends only
// POST), the body cortex has read, and the answer streamed back with the harness's own headers
// but for those that belong to the hop, cookies, and CORS (cortex's own policy decides that).

const agents = proxyAgents(1024);

/** Answer headers never passed back to the client. */
const DROPPED_ANSWER = new Set([
  // Hop-by-hop (RFC 9110 §7.6.1): node:http frames the client's answer itself.
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  // A harness's cookies would be set for cortex's origin, shared by every model behind it.
  "set-cookie",
  "set-cookie2",
  // Cortex's request id stays the one it answers with.
  "x-request-id",
]);

/**
 * The harness's answer headers (as the neuron relayed them) to send to the client: all but
 * hop-by-hop ones (those above, `proxy-*`, any the answer's `Connection` header names),
 * cookies, `access-control-*` (a harness's `Access-Control-Allow-Origin: *` would overrule
 * `cors_origins`) and `x-request-id`.
 */
export const answerHeaders = (headers: IncomingHttpHeaders): OutgoingHttpHeaders => {
  const named = new Set(
    (headers.connection ?? "").split(",").map((name) => name.trim().toLowerCase()),
  );
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (
      DROPPED_ANSWER.has(name) ||
      named.has(name) ||
      name.startsWith("proxy-") ||
      name.startsWith("access-control-")
    )
      continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
};

export interface HopRequest {
  readonly baseUrl: string;
  readonly method: string;
  /** The neuron's path, with the query string. */
  readonly path: string;
  /** Everything to send, `content-length` included when a body goes. */
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
export const sendHop = (options: HopRequest): Promise<IncomingMessage> =>
  new Promise<IncomingMessage>((resolve, reject) => {
    const { signal } = options;
    if (signal.aborted) return reject(signal.reason);
    const target = targetOf(options.baseUrl);
    const req = (target.tls ? httpsRequest : httpRequest)({
      method: options.method,
      hostname: target.hostname,
      port: target.port,
      path: `${target.basePath}${options.path}`,
      agent: target.tls ? agents.https : agents.http,
      headers: options.headers,
    });
    let answered = false;
    let failure: UpstreamFailure | undefined;
    let connectTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      req.destroy(signal.reason as Error);
      // A request still waiting for one of the agent's sockets reports nothing until it gets one.
      if (!req.socket) {
        done();
        reject(signal.reason);
      }
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const done = () => {
      signal.removeEventListener("abort", onAbort);
      if (connectTimer) clearTimeout(connectTimer);
    };
    req.on("socket", (socket) => {
      if (!socket.connecting) return;
      connectTimer = setTimeout(() => {
        failure = new UpstreamFailure("ETIMEDOUT", true, false);
        req.destroy(failure);
      }, options.connectTimeoutMs);
      socket.once("connect", () => clearTimeout(connectTimer));
    });
    req.setTimeout(options.idleTimeoutMs, () => {
      failure ??= new UpstreamFailure("ETIMEDOUT", false, true);
      req.destroy(failure);
    });
    req.on("response", (response: IncomingMessage) => {
      answered = true;
      if (connectTimer) clearTimeout(connectTimer);
      // The abort listener stays until the answer is over: aborting then cuts its body.
      response.once("close", done);
      resolve(response);
    });
    req.on("error", (error: NodeJS.ErrnoException) => {
      if (answered) return; // the answer's own stream reports it
      done();
      if (signal.aborted) return reject(signal.reason);
      if (error instanceof UpstreamFailure) return reject(error);
      const code = error.code ?? "ERR_UNKNOWN";
      const neverArrived =
        ["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"].includes(code) ||
        (req.reusedSocket && (code === "ECONNRESET" || code === "EPIPE"));
      reject(new UpstreamFailure(code, neverArrived, false, error));
    });
    req.end(options.body.length > 0 ? options.body : undefined);
  });

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
 * backpressure. A client that accepts nothing for `stallTimeoutMs` is cut.
 */
export const relayAnswer = async (
  response: IncomingMessage,
  res: ServerResponse,
  startedMs: number,
  stallTimeoutMs: number,
): Promise<Relayed> => {
  res.statusCode = response.statusCode ?? 502;
  const headers = answerHeaders(response.headers);
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined) res.setHeader(name, value);
  }
  let firstByteMs: number | null = null;
  const complete = await pipeBody(response, res, {
    // A stream's head goes out at once; a sized body carries it with its first bytes.
    flushHeaders: response.headers["content-length"] === undefined,
    stallTimeoutMs,
    onChunk: () => {
      firstByteMs ??= performance.now() - startedMs;
    },
  });
  return { complete, firstByteMs };
};
