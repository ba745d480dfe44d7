import { type ClientRequest, request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { StringDecoder } from "node:string_decoder";
import { createSseParser } from "@cortex/protocol/sse";

// A neuron's `GET /events` on plain node:http: one connection of its own (never the client's
// keep-alive pool, which a stream would hold forever), read with the protocol's SSE parser.
// It knows nothing of what the events mean; live-events.ts does.

/**
 * The most characters a neuron may send without completing a message: past it the stream is
 * dropped rather than buffered (a snapshot of thousands of models stays well below).
 */
export const MAX_EVENT_MESSAGE_CHARS = 8 * 1024 * 1024;

/** How a stream ended. */
export type EventStreamEnd =
  /** 404: a neuron from before `/events` (polling alone keeps its state). */
  | { readonly kind: "absent" }
  /** Another answer than a 200 event stream (401, 503 full, …): the neuron is there. */
  | { readonly kind: "refused"; readonly status: number }
  /** Connecting failed, or the open stream closed, broke or grew too large. */
  | { readonly kind: "dropped"; readonly why: string };

/** What the transport reports, in order: opened, alive and messages, then one `ended`. */
export interface EventStreamHandlers {
  /** The neuron answered 200 with an event stream. */
  readonly opened: () => void;
  /** Bytes arrived: the stream is alive (every chunk, messages or not). */
  readonly alive: () => void;
  /** One complete message (`event:` name, `data:` text). */
  readonly message: (event: string, data: string) => void;
  /** Called once, however the stream ends, and never after `close`. */
  readonly ended: (end: EventStreamEnd) => void;
}

/** An open (or opening) stream, as its owner holds it. */
export interface EventStream {
  /** Ends the stream from cortex's side; no handler is called afterwards. */
  close(): void;
}

const REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  ETIMEDOUT: "connection timed out",
};

const reasonOf = (error: unknown): string => {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") return REASONS[code] ?? code;
  return error instanceof Error ? error.message : String(error);
};

/** Opens `GET <url>/events` with the node's token (empty: none). */
export const openEventStream = (
  url: string,
  token: string,
  handlers: EventStreamHandlers,
): EventStream => {
  let done = false;
  const end = (how: EventStreamEnd) => {
    if (done) return;
    done = true;
    request.destroy();
    handlers.ended(how);
  };
  const target = new URL(`${url.replace(/\/+$/, "")}/events`);
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  const request: ClientRequest = send(target, {
    method: "GET",
    agent: false,
    headers: {
      accept: "text/event-stream",
      "user-agent": "cortex",
      ...(token === "" ? {} : { authorization: `Bearer ${token}` }),
    },
  });
  request.on("error", (error) => end({ kind: "dropped", why: reasonOf(error) }));
  request.on("response", (response: IncomingMessage) => {
    const status = response.statusCode ?? 0;
    const type = String(response.headers["content-type"] ?? "");
    if (status !== 200 || !type.includes("text/event-stream")) {
      response.resume();
      end(status === 404 ? { kind: "absent" } : { kind: "refused", status });
      return;
    }
    if (done) return;
    handlers.opened();
    const decoder = new StringDecoder("utf8");
    const parser = createSseParser();
    /** Characters since the last chunk that completed a message. */
    let pending = 0;
    response.on("data", (chunk: Buffer) => {
      if (done) return;
      handlers.alive();
      const text = decoder.write(chunk);
      const messages = parser.push(text);
      pending = messages.length > 0 ? 0 : pending + text.length;
      if (pending > MAX_EVENT_MESSAGE_CHARS) {
        end({
          kind: "dropped",
          why: `a message longer than ${MAX_EVENT_MESSAGE_CHARS} characters`,
        });
        return;
      }
      for (const message of messages) {
        if (done) return;
        if (message.kind === "message") handlers.message(message.event, message.data);
      }
    });
    response.on("end", () => end({ kind: "dropped", why: "the stream ended" }));
    response.on("error", (error) => end({ kind: "dropped", why: reasonOf(error) }));
    response.on("close", () => end({ kind: "dropped", why: "the connection closed" }));
  });
  request.end();
  return {
    close: () => {
      done = true;
      request.destroy();
    },
  };
};
