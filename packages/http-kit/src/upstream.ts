import {
  Agent,
  type ClientRequest,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Abortable } from "./client-signal.js";

// The client half of a proxy hop, on node:http with a keep-alive agent: got's per-request option
// handling cost more than the rest of the hop (measured in packages/bench). Control-plane calls
// (polls, loads) keep using got.

/** Keep-alive agents for proxying (plain and TLS): the most recently used socket goes first. */
export interface ProxyAgents {
  readonly http: Agent;
  readonly https: HttpsAgent;
}

export const proxyAgents = (maxSockets: number): ProxyAgents => ({
  http: new Agent({ keepAlive: true, maxSockets, scheduling: "lifo" }),
  https: new HttpsAgent({ keepAlive: true, maxSockets, scheduling: "lifo" }),
});

/** An upstream base URL, parsed once: node:http's own URL handling costs more per request. */
export interface UpstreamTarget {
  readonly tls: boolean;
  readonly hostname: string;
  readonly port: number;
  /** The base URL's path without its trailing slash ("" for a bare origin). */
  readonly basePath: string;
}

const targets = new Map<string, UpstreamTarget>();

/** The parsed form of `baseUrl` (http: or https:), memoised: a fleet has few base URLs. */
export const targetOf = (baseUrl: string): UpstreamTarget => {
  const known = targets.get(baseUrl);
  if (known) return known;
  const url = new URL(baseUrl);
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new TypeError(`not an http(s) URL: ${baseUrl}`);
  const tls = url.protocol === "https:";
  const target: UpstreamTarget = {
    tls,
    // An IPv6 literal comes bracketed in a URL, bare in a socket address.
    hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? (tls ? 443 : 80) : Number(url.port),
    basePath: url.pathname.replace(/\/+$/, ""),
  };
  if (targets.size >= 1024) targets.clear();
  targets.set(baseUrl, target);
  return target;
};

/** Errors that mean the request never reached the upstream: safe to send it elsewhere. */
const NEVER_ARRIVED = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/** The upstream gave no answer (no status line) before failing. */
export class UpstreamFailure extends Error {
  /** Node's error code (ECONNREFUSED, ECONNRESET, …); ETIMEDOUT for either timeout. */
  readonly code: string;
  /**
   * The request cannot have reached a live upstream: the connection was refused, unreachable or
   * timed out while connecting, or a kept-alive socket was found dead the moment it was used
   * (Node's advice for `reusedSocket`). A reset of a fresh connection is not: the upstream may
   * have started on it.
   */
  readonly neverArrived: boolean;
  /** The connection was up, but no byte came for the idle timeout. */
  readonly idle: boolean;

  constructor(code: string, neverArrived: boolean, idle: boolean, cause?: unknown) {
    super(`the upstream did not answer (${code})`, cause === undefined ? undefined : { cause });
    this.name = "UpstreamFailure";
    this.code = code;
    this.neverArrived = neverArrived;
    this.idle = idle;
  }
}

export interface UpstreamRequest {
  /**
   * POST by default; any other method too (`/upstream/…` passes the client's). A GET or HEAD
   * with an empty body goes without `content-length`; everything else carries one.
   */
  readonly method?: string;
  /** Where to: a base URL (see targetOf) and the path below it, with its query if any. */
  readonly target: UpstreamTarget;
  readonly path: string;
  readonly agents: ProxyAgents;
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer | string;
  /** Aborting destroys the request: before the answer it rejects, during it the answer errors. */
  readonly signal: Abortable;
  readonly connectTimeoutMs: number;
  /** No byte for this long, before or during the answer, fails it; never a total limit. */
  readonly idleTimeoutMs: number;
}

/** What `post` resolves with: the answer's head, its body still to read. */
export interface UpstreamAnswer {
  readonly response: IncomingMessage;
  readonly request: ClientRequest;
}

/**
 * Sends `body` (a POST unless `method` says otherwise) and resolves once the upstream's status
 * line and headers arrive. Rejects with UpstreamFailure when no answer came, or with the
 * signal's reason when it aborted first.
 */
export const post = (options: UpstreamRequest): Promise<UpstreamAnswer> =>
  new Promise<UpstreamAnswer>((resolve, reject) => {
    const { signal } = options;
    if (signal.aborted) return reject(signal.reason);
    const length =
      typeof options.body === "string" ? Buffer.byteLength(options.body) : options.body.length;
    const { target } = options;
    const method = options.method ?? "POST";
    const req = (target.tls ? httpsRequest : httpRequest)({
      method,
      hostname: target.hostname,
      port: target.port,
      path: `${target.basePath}${options.path}`,
      agent: target.tls ? options.agents.https : options.agents.http,
      headers:
        (method === "GET" || method === "HEAD") && length === 0
          ? options.headers
          : { ...options.headers, "content-length": length },
    });
    let answered = false;
    let failure: UpstreamFailure | undefined;
    let connectTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      req.destroy(signal.reason as Error);
      // A request still waiting for one of the agent's sockets reports nothing until it gets
      // one, which may be never: it gives up here, and the agent skips it later.
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
      resolve({ response, request: req });
    });
    req.on("error", (error: NodeJS.ErrnoException) => {
      if (answered) return; // the answer's own stream reports it
      done();
      if (signal.aborted) return reject(signal.reason);
      if (error instanceof UpstreamFailure) return reject(error);
      const code = error.code ?? "ERR_UNKNOWN";
      const neverArrived =
        NEVER_ARRIVED.has(code) ||
        (req.reusedSocket && (code === "ECONNRESET" || code === "EPIPE"));
      reject(new UpstreamFailure(code, neverArrived, false, error));
    });
    req.end(options.body);
  });

/** Hop-by-hop answer headers (RFC 9110 §7.6.1): node:http frames the next answer itself. */
const HOP_BY_HOP_ANSWER: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  // A harness's cookies would be set for the proxy's origin, shared by every model behind it.
  "set-cookie",
  "set-cookie2",
]);

/**
 * An upstream's answer headers to pass on whole (`/upstream/…`): all but hop-by-hop ones (those
 * above, `proxy-*`, any the answer's `Connection` header names), cookies, and what `dropped`
 * also refuses.
 */
export const answerHeaders = (
  headers: IncomingHttpHeaders,
  dropped: (name: string) => boolean = () => false,
): OutgoingHttpHeaders => {
  const named = new Set(
    (headers.connection ?? "").split(",").map((name) => name.trim().toLowerCase()),
  );
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (
      HOP_BY_HOP_ANSWER.has(name) ||
      named.has(name) ||
      name.startsWith("proxy-") ||
      dropped(name)
    )
      continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
};

/** Upstream headers that describe the body: the ones a proxy passes on. */
export const passHeaders = (
  response: IncomingMessage,
  names: readonly string[],
): Record<string, string | string[]> => {
  const headers: Record<string, string | string[]> = {};
  for (const name of names) {
    const value = response.headers[name];
    if (value !== undefined) headers[name] = value;
  }
  return headers;
};

export interface PipeOptions {
  /** Sees every chunk before it is written (first-byte time, keeping a tail). */
  readonly onChunk?: (chunk: Buffer) => void;
  /** Write nothing to `res` (the caller relays the body its own way); still reads it all. */
  readonly discard?: boolean;
  /**
   * Send the headers on their own unless body bytes go out with them first: a stream whose
   * first chunk is late still shows the client its status at once. The flush waits for the
   * end of this turn of the event loop, so a first chunk that came in the same read (the
   * usual case) leaves in the same write as the headers.
   */
  readonly flushHeaders?: boolean;
  /**
   * A client that accepts none of the bytes waiting for it for this long is cut (`res` is
   * destroyed, which aborts the caller's upstream request and frees its slot). 0: never.
   */
  readonly stallTimeoutMs?: number;
}

/**
 * Watches `res` for a client that stopped reading: armed when a write has to wait, it cuts the
 * response once no waiting byte has been accepted for `ms` (a client that reads slowly, but
 * reads, keeps it). Returns the function that arms it.
 */
export const stallGuard = (res: ServerResponse, ms: number): (() => void) => {
  if (!(ms > 0)) return () => {};
  let timer: NodeJS.Timeout | undefined;
  let waiting = 0;
  const disarm = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  const check = () => {
    timer = undefined;
    if (res.writableFinished || res.destroyed) return;
    const now = res.writableLength;
    if (now === 0) return;
    if (now < waiting) {
      waiting = now;
      timer = setTimeout(check, ms);
      return;
    }
    res.destroy();
  };
  // Most responses never wait on their client: the listeners go on at the first arming only.
  let watching = false;
  return () => {
    if (timer || res.writableFinished || res.destroyed) return;
    if (!watching) {
      watching = true;
      res.on("drain", disarm);
      res.once("finish", disarm);
      res.once("close", disarm);
    }
    waiting = res.writableLength;
    timer = setTimeout(check, ms);
  };
};

/**
 * Copies the answer's body into `res` with backpressure (a slow client pauses the upstream
 * instead of growing a buffer) and ends `res` when it is complete. Resolves true when the whole
 * body arrived, false when it broke off (abort, reset, idle timeout); `res` is then left to the
 * caller.
 */
export const pipeBody = (
  response: IncomingMessage,
  res: ServerResponse,
  options: PipeOptions = {},
): Promise<boolean> =>
  new Promise<boolean>((resolve) => {
    let ended = false;
    let wrote = false;
    const onDrain = () => response.resume();
    const stalling = stallGuard(res, options.discard ? 0 : (options.stallTimeoutMs ?? 0));
    if (options.flushHeaders && !options.discard)
      setImmediate(() => {
        if (!wrote && !res.writableEnded && !res.destroyed) res.flushHeaders();
      });
    response.on("data", (chunk: Buffer) => {
      options.onChunk?.(chunk);
      if (options.discard) return;
      wrote = true;
      if (!res.write(chunk)) {
        response.pause();
        res.once("drain", onDrain);
        stalling();
      }
    });
    response.on("end", () => {
      ended = true;
      res.off("drain", onDrain);
      if (!options.discard) {
        res.end();
        // What the client has not taken yet still has to go: a client that takes none of
        // it is cut, or its connection would stay open (the slot is freed already).
        if (!res.writableFinished) stalling();
      }
      resolve(true);
    });
    // An aborted answer emits "error" (ECONNRESET "aborted"); "close" follows every ending.
    response.on("error", () => {});
    response.on("close", () => {
      if (ended) return;
      res.off("drain", onDrain);
      resolve(false);
    });
  });

/**
 * Answers `res` with an upstream's whole answer (`/upstream/…`): its status, its headers as
 * `answerHeaders` keeps them (with `dropped`; added to those `res` has already), and its body,
 * streamed with backpressure; `onChunk` sees every chunk. Resolves true when the whole answer
 * went out; on false (it broke off, or the client left) `res` is left to the caller.
 */
export const relayAnswer = (
  response: IncomingMessage,
  res: ServerResponse,
  options: {
    readonly stallTimeoutMs: number;
    readonly onChunk?: () => void;
    readonly dropped?: (name: string) => boolean;
  },
): Promise<boolean> => {
  res.statusCode = response.statusCode ?? 502;
  const headers = answerHeaders(response.headers, options.dropped);
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined) res.setHeader(name, value);
  }
  // A stream's head goes out at once; a sized body carries it with its first bytes.
  return pipeBody(response, res, {
    flushHeaders: response.headers["content-length"] === undefined,
    stallTimeoutMs: options.stallTimeoutMs,
    ...(options.onChunk ? { onChunk: options.onChunk } : {}),
  });
};
