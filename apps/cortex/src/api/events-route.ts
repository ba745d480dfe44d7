import { startEventStream } from "@cortex/http-kit";
import { ERROR_CODES, errorEnvelope, type FleetEvent, IsoTime } from "@cortex/protocol";
import type { Request, RequestHandler } from "express";
import type { FleetStore } from "../fleet/fleet-store.js";
import { type Log, silentLog } from "../log.js";

// `GET /api/events`: the fleet's events as server-sent events, one JSON object per plain
// `data:` message (no `event:` name, so an EventSource's `onmessage` receives every type).

/** One announced event, serialized once for every client. */
export interface FeedEntry {
  readonly id: number;
  readonly event: FleetEvent;
  /** The whole SSE message: `id:` line, `data:` line, blank line. */
  readonly frame: string;
}

/** A connected stream, as the feed sees it. */
export interface FeedClient {
  send(entry: FeedEntry): void;
  /** The feed is shutting down: end the stream. */
  close(): void;
}

/**
 * Subscribes once to the store, numbers every event, keeps the last `backlog` of them for
 * reconnecting clients and fans each one out to the connected streams.
 */
export interface EventFeed {
  /** The id of the newest event so far (the id before the first one while none came). */
  readonly lastId: number;
  /** Streams connected right now. */
  readonly clients: number;
  /** Buffered events newer than `id`; the whole buffer when `id` is from another run. */
  replayAfter(id: number): FeedEntry[];
  /** Buffered events that happened at or after `ms` (Unix milliseconds). */
  replaySince(ms: number): FeedEntry[];
  /** Returns the unsubscribe function; a closed feed closes the client at once. */
  subscribe(client: FeedClient): () => void;
  /** Unsubscribes from the store and ends every stream (shutdown). Idempotent. */
  close(): void;
}

/**
 * `firstId` defaults to the start time in microseconds, so ids keep growing across restarts: a
 * client reconnecting to a restarted cortex with the old process's Last-Event-ID is behind every
 * new id and receives the whole backlog instead of nothing.
 */
export const createEventFeed = (
  store: FleetStore,
  backlog = 100,
  firstId: number = Date.now() * 1000,
): EventFeed => {
  if (!Number.isSafeInteger(backlog) || backlog < 0) {
    throw new RangeError(`backlog must be a non-negative integer, got ${backlog}`);
  }
  const ring: (FeedEntry | undefined)[] = new Array(backlog);
  let start = 0;
  let size = 0;
  let lastId = firstId - 1;
  let closed = false;
  const clients = new Set<FeedClient>();

  const buffered = (): FeedEntry[] => {
    const entries: FeedEntry[] = [];
    for (let offset = 0; offset < size; offset += 1) {
      const entry = ring[(start + offset) % backlog];
      if (entry) entries.push(entry);
    }
    return entries;
  };

  const remember = (entry: FeedEntry): void => {
    if (backlog === 0) return;
    if (size < backlog) {
      ring[(start + size) % backlog] = entry;
      size += 1;
    } else {
      ring[start] = entry;
      start = (start + 1) % backlog;
    }
  };

  const unsubscribeStore = store.subscribe((event) => {
    lastId += 1;
    const entry: FeedEntry = {
      id: lastId,
      event,
      frame: `id: ${lastId}\ndata: ${JSON.stringify(event)}\n\n`,
    };
    remember(entry);
    // Copied first: a client that gets disconnected while being sent to leaves the set.
    for (const client of [...clients]) {
      try {
        client.send(entry);
      } catch {
        // One broken stream must not starve the others.
      }
    }
  });

  return {
    get lastId() {
      return lastId;
    },
    get clients() {
      return clients.size;
    },
    replayAfter(id) {
      const entries = buffered();
      return id > lastId ? entries : entries.filter((entry) => entry.id > id);
    },
    replaySince(ms) {
      return buffered().filter((entry) => Date.parse(entry.event.at) >= ms);
    },
    subscribe(client) {
      if (closed) {
        client.close();
        return () => {};
      }
      clients.add(client);
      return () => {
        clients.delete(client);
      };
    },
    close() {
      if (closed) return;
      closed = true;
      unsubscribeStore();
      for (const client of [...clients]) {
        clients.delete(client);
        try {
          client.close();
        } catch {
          // Already gone.
        }
      }
    },
  };
};

export interface EventsHandlerOptions {
  /** A `: keep-alive` comment this often keeps proxies from closing an idle stream. */
  readonly heartbeatMs?: number;
  /** A client whose unsent output exceeds this is disconnected instead of buffered. */
  readonly maxBufferedBytes?: number;
  readonly log?: Log;
}

const HEARTBEAT = ": keep-alive\n\n";

type Replay =
  | { readonly kind: "none" }
  | { readonly kind: "after"; readonly id: number }
  | { readonly kind: "since"; readonly ms: number }
  | { readonly kind: "invalid"; readonly message: string };

/**
 * A new subscriber gets only live events, unless it says what it has seen: `Last-Event-ID`
 * (sent by EventSource on every reconnect, so it wins over the URL's `since`) or `?since=`.
 */
const replayOf = (req: Request): Replay => {
  const lastEventId = req.get("last-event-id")?.trim();
  // An id this feed never made (another server's scheme) says nothing about what was missed.
  if (lastEventId && /^\d{1,16}$/.test(lastEventId))
    return { kind: "after", id: Number(lastEventId) };
  const since = req.query.since;
  if (since === undefined) return { kind: "none" };
  if (typeof since !== "string" || !IsoTime.safeParse(since).success) {
    return {
      kind: "invalid",
      message:
        "since must be one ISO 8601 time with a zone, such as 2025-06-15T12:00:00Z (write '+' in an offset as %2B)",
    };
  }
  return { kind: "since", ms: Date.parse(since) };
};

/**
 * The handler for `GET /api/events`. Every message carries an `id:` so a reconnecting client
 * resumes where it stopped, as far as the feed's backlog reaches.
 */
export const eventsHandler = (
  feed: EventFeed,
  options: EventsHandlerOptions = {},
): RequestHandler => {
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;
  const log = options.log ?? silentLog;

  return (req, res) => {
    const replay = replayOf(req);
    if (replay.kind === "invalid") {
      res
        .status(ERROR_CODES.invalid_request_error.status)
        .json(errorEnvelope("invalid_request_error", replay.message, "since"));
      return;
    }

    startEventStream(res);

    let done = false;
    let unsubscribe = (): void => {};
    const heartbeat = setInterval(() => write(HEARTBEAT), heartbeatMs);
    heartbeat.unref();

    // Runs exactly once however the stream ends: client gone, too slow, or feed closed.
    const finish = (): void => {
      if (done) return;
      done = true;
      clearInterval(heartbeat);
      unsubscribe();
    };

    const write = (chunk: string): void => {
      if (done) return;
      res.write(chunk);
      // Node buffers whatever the socket cannot take yet; a client that stopped reading would
      // otherwise grow that buffer without bound, one copy of every event.
      if (res.writableLength > maxBufferedBytes) {
        log.warn(
          {
            remote: req.socket.remoteAddress,
            buffered_bytes: res.writableLength,
            max_bytes: maxBufferedBytes,
          },
          "event stream client is not reading; disconnected",
        );
        finish();
        res.destroy();
      }
    };

    res.on("close", finish);
    // Without a listener an error on the response would crash the process.
    res.on("error", finish);
    if (res.destroyed) {
      finish();
      return;
    }

    const missed =
      replay.kind === "after"
        ? feed.replayAfter(replay.id)
        : replay.kind === "since"
          ? feed.replaySince(replay.ms)
          : [];
    // Replay and subscription happen in one synchronous step, so no event falls between them.
    for (const entry of missed) write(entry.frame);
    if (done) return;
    unsubscribe = feed.subscribe({
      send: (entry) => write(entry.frame),
      close: () => {
        finish();
        res.end();
      },
    });
  };
};
