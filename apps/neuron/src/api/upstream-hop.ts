import {
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";
import { type Abortable, pipeBody, proxyAgents, targetOf, UpstreamFailure } from "@cortex/http-kit";

// The hop of `/upstream/<model>/…` to a harness: any method (http-kit's `post` sends only
// POST) with the headers the handler chose, and the answer streamed back with the harness's
// headers but for hop-by-hop ones and cookies.

const agents = proxyAgents(1024);

/** Hop-by-hop headers (RFC 9110 §7.6.1): node:http frames the caller's answer itself. */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
];

/** Answer headers never passed back. */
const DROPPED_ANSWER = new Set([...HOP_BY_HOP, "set-cookie", "set-cookie2"]);

/** Names the `Connection` header lists: connection-scoped too. */
const connectionNamed = (connection: string | undefined): ReadonlySet<string> =>
  new Set((connection ?? "").split(",").map((name) => name.trim().toLowerCase()));

/**
 * The harness's answer headers to pass back: all but hop-by-hop ones (those above, `proxy-*`,
 * any the answer's `Connection` header names) and cookies (cortex drops them too).
 */
export const answerHeaders = (headers: IncomingHttpHeaders): OutgoingHttpHeaders => {
  const named = connectionNamed(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (DROPPED_ANSWER.has(name) || named.has(name) || name.startsWith("proxy-")) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
};

export interface HopRequest {
  readonly baseUrl: string;
  readonly method: string;
  /** The harness's path, with the query string. */
  readonly path: string;
  /** Everything to send, `content-length` included when a body goes. */
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
export const sendHop = (options: HopRequest): Promise<IncomingMessage> =>
  new Promise<IncomingMessage>((resolve, reject) => {
    const { signal } = options;
    if (signal.aborted) return reject(signal.reason);
    const target = targetOf(options.baseUrl);
    const req = httpRequest({
      method: options.method,
      hostname: target.hostname,
      port: target.port,
      path: `${target.basePath}${options.path}`,
      agent: agents.http,
      headers: options.headers,
    });
    let answered = false;
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
      connectTimer = setTimeout(
        () => req.destroy(new UpstreamFailure("ETIMEDOUT", true, false)),
        options.connectTimeoutMs,
      );
      socket.once("connect", () => clearTimeout(connectTimer));
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
      reject(new UpstreamFailure(error.code ?? "ERR_UNKNOWN", false, false, error));
    });
    req.end(options.body.length > 0 ? options.body : undefined);
  });

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
