import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import { ApiError, type ErrorLog } from "./api-error.js";
import { sendError } from "./errors.js";
import { modelRoutePath } from "./model-routes.js";
import { trackFreshConnections } from "./shutdown.js";

// The inference path of both servers runs on plain node:http: express's routing, its request and
// response wrappers and body-parser cost more per request than the whole proxy hop (DESIGN.md's
// latency budget). Everything else (admin, health, metrics) stays on express.

/** Handles one request; throwing (or rejecting) answers in the OpenAI error envelope. */
export type FastHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export { pathOf } from "./model-routes.js";

/**
 * The requests the fast path takes: those that name a model (model-routes.ts), every
 * `POST /v1/<something>` among them.
 */
export const isInference = (req: IncomingMessage): boolean =>
  modelRoutePath(req.method, req.url) !== null;

/** Answers a failed request: the envelope while nothing was sent, else a cut connection. */
export const failRequest = (res: ServerResponse, error: unknown, log: ErrorLog): void => {
  if (!(error instanceof ApiError)) log.error({ err: error }, "unexpected error");
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendError(
    res,
    error instanceof ApiError ? error : new ApiError("internal_error", "internal error"),
  );
};

/**
 * One request listener: requests that `take` goes to `fast`, everything else to `rest` (the
 * express app). A failure of `fast` is answered here, so the handler only throws.
 */
export const withFastPath = (
  take: (req: IncomingMessage) => boolean,
  fast: FastHandler,
  rest: RequestListener,
  log: ErrorLog,
): RequestListener => {
  const fail = (res: ServerResponse, error: unknown) => failRequest(res, error, log);
  return (req, res) => {
    if (take(req)) fast(req, res).catch((error: unknown) => fail(res, error));
    else rest(req, res);
  };
};

export interface ListenOptions {
  /**
   * Open client connections beyond which a request is answered 503 `overloaded` and its
   * connection closed; twice as many are dropped by the kernel-facing listener unanswered.
   */
  readonly maxConnections?: number;
}

/** How long a connection over the limit may stay open without sending its request. */
const OVER_LIMIT_IDLE_MS = 5000;

/**
 * Connections the kernel may hold before they are accepted (capped by net.core.somaxconn).
 * Node's 511 overflowed when thousands of streams opened at once (issue 21's open streams:
 * cortex opening 9,000 sockets to a neuron), and the dropped SYNs' retries pushed connects
 * past cortex's 5 s connect timeout.
 */
const LISTEN_BACKLOG = 4096;

/** Starts a server for `listener` on `host:port`; resolves once it listens. */
export const listen = (
  listener: RequestListener,
  port: number,
  host: string,
  options: ListenOptions = {},
): Promise<Server> =>
  new Promise((resolve, reject) => {
    const max = options.maxConnections;
    let server: Server;
    if (max === undefined) server = createServer(listener);
    else {
      const overLimit = new WeakSet<Socket>();
      let open = 0;
      server = createServer((req, res) => {
        if (!overLimit.has(req.socket)) return listener(req, res);
        res.shouldKeepAlive = false;
        sendError(
          res,
          new ApiError("overloaded", "the server has too many open connections; retry shortly", {
            retryAfterS: 1,
          }),
        );
      });
      server.maxConnections = max * 2;
      server.on("connection", (socket: Socket) => {
        open += 1;
        socket.once("close", () => {
          open -= 1;
        });
        if (open > max) {
          overLimit.add(socket);
          socket.setTimeout(OVER_LIMIT_IDLE_MS, () => socket.destroy());
        }
      });
    }
    trackFreshConnections(server);
    server.once("error", reject);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
