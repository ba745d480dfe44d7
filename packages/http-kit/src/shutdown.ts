import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { MAX_TIMER_MS } from "@cortex/protocol";
import type { LevelLog } from "./api-error.js";

// A bounded stop for both servers: the listener closes, in-flight requests get a grace period
// and are then cut, the rest of the stop runs, and a hard deadline exits the process whatever
// the stop (or its log output) is doing.

/** Milliseconds bounded to what a timer holds (grace + margin may pass it). */
export const timerMs = (ms: number): number => Math.min(Math.max(0, ms), MAX_TIMER_MS);

export interface Drain {
  /** Resolves once every connection is closed: all requests finished or cut. */
  readonly closed: Promise<void>;
  /** Cuts every connection now, whatever is in flight (a second signal; the grace's end). */
  readonly cut: () => void;
}

/** Per server: connections that have not delivered a request yet (see `trackFreshConnections`). */
const fresh = new WeakMap<Server, Set<Socket>>();

/**
 * Remembers which of `server`'s connections have not delivered a request yet. Node counts such a
 * connection as busy, so `closeIdleConnections` never closes it: a client that connected just
 * as the server began to stop would hold the stop for the whole grace. `drainServer` closes them.
 */
export const trackFreshConnections = (server: Server): void => {
  if (fresh.has(server)) return;
  const sockets = new Set<Socket>();
  fresh.set(server, sockets);
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.prependListener("request", (req: IncomingMessage) => {
    sockets.delete(req.socket);
  });
};

/**
 * Stops `server` accepting connections and closes its idle ones; requests in flight get
 * `graceMs`, then every connection is cut. A keep-alive connection is closed as soon as its
 * request ends (Node would otherwise keep it until `keepAliveTimeout`), and anything a client
 * sends on one meanwhile is answered with `Connection: close`. A connection that has delivered
 * no request is closed too, when the server's connections are tracked (`listen` does).
 */
export const drainServer = (server: Server, graceMs: number, idleCheckMs = 50): Drain => {
  const closed = new Promise<void>((resolve) => {
    if (!server.listening) resolve();
    else server.close(() => resolve());
  });
  server.prependListener("request", (_req, res: ServerResponse) => {
    res.shouldKeepAlive = false;
  });
  // Idle keep-alive connections, and (when tracked) those that never delivered a request.
  const closeIdle = () => {
    server.closeIdleConnections();
    for (const socket of fresh.get(server) ?? []) socket.destroy();
  };
  closeIdle();
  const idle = setInterval(closeIdle, idleCheckMs);
  idle.unref();
  let force: NodeJS.Timeout | undefined;
  const cut = () => {
    clearInterval(idle);
    if (force) clearTimeout(force);
    server.closeAllConnections();
  };
  force = setTimeout(cut, timerMs(graceMs));
  force.unref();
  void closed.then(() => {
    clearInterval(idle);
    if (force) clearTimeout(force);
  });
  return { closed, cut };
};

export interface ShutdownOptions {
  /** The whole orderly stop: requests drained (or cut), then the rest. */
  readonly stop: () => Promise<void>;
  /** Cuts the requests still in flight at once (a second signal during the stop). */
  readonly cut: () => void;
  /** From the first signal: after this long the process exits with code 1, stop or no stop. */
  readonly deadlineMs: number;
  /** Waits for the log output to take the last lines; given at most `flushMs` before exiting. */
  readonly flush: () => Promise<void>;
  readonly flushMs: number;
  readonly exit: (code: number) => void;
  /** What the stop logs through (pino's logger fits). */
  readonly log: LevelLog;
}

/**
 * The SIGTERM / SIGINT handler. The first signal starts `stop` and arms the deadline (an unref'd
 * timer, so it never keeps the process alive by itself); the process exits 0 when the stop
 * ends, 1 when it fails or the deadline passes. A second signal cuts the requests still in
 * flight (the grace ends early); the rest of the stop goes on, still under the deadline.
 * Later signals are ignored.
 */
export const shutdownOnSignal = (options: ShutdownOptions): ((signal: string) => void) => {
  let signals = 0;
  let exiting = false;
  let deadline: NodeJS.Timeout | undefined;

  const finish = (code: number) => {
    if (exiting) return;
    exiting = true;
    if (deadline) clearTimeout(deadline);
    // The exit must not wait on a stuck log output: the flush gets flushMs at most.
    let exited = false;
    const exit = () => {
      if (exited) return;
      exited = true;
      clearTimeout(flushTimer);
      options.exit(code);
    };
    const flushTimer = setTimeout(exit, timerMs(options.flushMs));
    options.flush().then(exit, exit);
  };

  // The deadline may be a sum of configured durations: bounded once, so the log tells the truth.
  const deadlineMs = timerMs(options.deadlineMs);
  return (signal) => {
    signals += 1;
    if (signals === 1) {
      options.log.info({ signal, deadline_ms: deadlineMs }, "stopping");
      deadline = setTimeout(() => {
        options.log.error(
          { deadline_ms: deadlineMs },
          "the stop did not finish in time; exiting anyway",
        );
        finish(1);
      }, deadlineMs);
      deadline.unref();
      Promise.resolve()
        .then(options.stop)
        .then(
          () => {
            options.log.info({}, "stopped");
            finish(0);
          },
          (error: unknown) => {
            options.log.error({ err: error }, "the stop failed");
            finish(1);
          },
        );
      return;
    }
    if (signals === 2) {
      options.log.warn({ signal }, "second signal: cutting the requests still in flight");
      options.cut();
    }
  };
};

/** How long the last log lines may take to leave before a server process exits. */
const LOG_FLUSH_MS = 1000;

/**
 * A server process's stop: SIGTERM and SIGINT run `shutdownOnSignal` with `stop` and `cut`, the
 * deadline, and the log output's flush, then exit the process.
 */
export const stopOnSignals = (
  options: Pick<ShutdownOptions, "stop" | "cut" | "deadlineMs" | "flush" | "log">,
): void => {
  const onSignal = shutdownOnSignal({
    ...options,
    flushMs: LOG_FLUSH_MS,
    exit: (code) => process.exit(code),
  });
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
};
