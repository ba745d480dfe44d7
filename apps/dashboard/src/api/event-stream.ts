import type { FleetEvent } from "@cortex/protocol";
import { createSseParser, type SseMessage } from "@cortex/protocol/sse";
import { authHeaders, failureOf } from "./client.js";

// `GET /api/events` over fetch: EventSource cannot send the Authorization header. The reader
// keeps the last event id and reconnects with Last-Event-ID, so cortex replays what was missed
// (as far as its backlog reaches); waits between tries grow from 1 s to 30 s.

export type StreamState = "connecting" | "open" | "retrying";

export interface EventStreamOptions {
  readonly token: string;
  /** Replay events from this time on the first connection (ISO 8601); later ones use the id. */
  readonly since?: string;
  readonly onEvent: (event: FleetEvent, id: string | null) => void;
  readonly onState: (state: StreamState, detail?: string) => void;
  /** The token was refused: the stream stops for good. */
  readonly onUnauthorized: (message: string) => void;
  readonly signal: AbortSignal;
  readonly fetchImpl?: typeof fetch;
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** The wait before reconnect attempt `attempt` (0-based): 1 s, 2 s, 4 s … at most 30 s. */
export const backoffMs = (attempt: number): number => Math.min(30_000, 1000 * 2 ** attempt);

const abortableSleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

/** Runs until `signal` aborts or the token is refused. */
export const followEvents = async (options: EventStreamOptions): Promise<void> => {
  const fetchImpl = options.fetchImpl ?? ((input, init) => fetch(input, init));
  const sleep = options.sleep ?? abortableSleep;
  const { signal } = options;
  let lastId: string | null = null;
  let attempt = 0;

  while (!signal.aborted) {
    options.onState(attempt === 0 ? "connecting" : "retrying");
    let detail = "the stream ended";
    try {
      const query: string =
        lastId === null && options.since !== undefined
          ? `?since=${encodeURIComponent(options.since)}`
          : "";
      const response: Response = await fetchImpl(`/api/events${query}`, {
        headers: {
          accept: "text/event-stream",
          ...authHeaders(options.token),
          ...(lastId === null ? {} : { "last-event-id": lastId }),
        },
        cache: "no-store",
        signal,
      });
      if (response.status === 401) {
        options.onUnauthorized(failureOf(401, await response.text()).message);
        return;
      }
      if (!response.ok || response.body === null) {
        detail = failureOf(response.status, await response.text()).message;
      } else {
        options.onState("open");
        attempt = 0;
        const parser = createSseParser();
        const reader: ReadableStreamDefaultReader<string> = response.body
          .pipeThrough(new TextDecoderStream())
          .getReader();
        for (;;) {
          const { done, value }: ReadableStreamReadResult<string> = await reader.read();
          if (done) break;
          const messages: SseMessage[] = parser.push(value);
          for (const message of messages) {
            if (message.kind !== "message") continue;
            if (message.id !== null) lastId = message.id;
            try {
              options.onEvent(JSON.parse(message.data) as FleetEvent, message.id);
            } catch {
              // A message that is not JSON is not one of cortex's events: skip it.
            }
          }
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      detail = error instanceof Error ? error.message : String(error);
    }
    if (signal.aborted) return;
    options.onState("retrying", detail);
    await sleep(backoffMs(attempt), signal);
    attempt += 1;
  }
};
