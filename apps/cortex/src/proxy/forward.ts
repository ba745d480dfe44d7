import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type Abortable,
  passHeaders,
  pipeBody,
  post,
  proxyAgents,
  targetOf,
  UpstreamFailure,
} from "@cortex/http-kit";

// Streams one client request to a neuron and the answer back, chunk by chunk, never buffering
// a stream, on plain node:http with a keep-alive agent (the hot path; see docs/contract.md).
// Only headers that describe the body pass either way: the client's credentials, cookies and
// hop-by-hop headers stay behind, and the neuron's token is added.

const agents = proxyAgents(4096);

/** Upstream answer headers worth passing to the client. */
const PASSED_HEADERS = [
  "content-type",
  "content-length",
  "cache-control",
  "x-accel-buffering",
  "retry-after",
];

/** How much of the end of an answer is kept to read `usage` from. */
const TAIL_BYTES = 16 << 10;

/**
 * The neuron answered nothing. `retryable` when the request never reached it (connection
 * refused, host unreachable, connect timeout, a reset kept-alive socket): another replica may
 * take it. A reset of a fresh connection is not retried, since the neuron may have started on it.
 */
export class UpstreamConnectError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, retryable: boolean, cause: unknown) {
    super(`could not reach the neuron (${code})`, { cause });
    this.name = "UpstreamConnectError";
    this.code = code;
    this.retryable = retryable;
  }
}

/** The neuron accepted the request but stopped answering for longer than the idle timeout. */
export class UpstreamTimeoutError extends Error {
  constructor(cause: unknown) {
    super("the neuron stopped answering", { cause });
    this.name = "UpstreamTimeoutError";
  }
}

export interface Usage {
  readonly prompt_tokens: number | null;
  readonly completion_tokens: number | null;
}

export interface ForwardResult {
  readonly status: number;
  /** Milliseconds from sending to the first body byte; null when there was no body. */
  readonly firstByteMs: number | null;
  readonly usage: Usage | null;
  /** The client went away before the answer was complete (the upstream request was aborted). */
  readonly aborted: boolean;
  /** The answer broke off after bytes had reached the client; the connection was cut. */
  readonly broken: boolean;
}

export interface ForwardOptions {
  /** The neuron's base URL (as configured) and the client's path below it. */
  readonly baseUrl: string;
  readonly path: string;
  readonly body: Buffer | string;
  readonly token: string;
  readonly requestId: string;
  readonly accept: string | undefined;
  /** No byte for this long (before or during the answer) fails the request; never a total limit. */
  readonly idleTimeoutMs: number;
  readonly signal: Abortable;
  /** A client that accepts no bytes of the answer for this long is cut (0: never). */
  readonly stallTimeoutMs?: number;
  /** Called when the neuron's answer starts, before anything of it is written. */
  readonly onResponse?: () => void;
}

/** The JSON object starting at `start` (a `{`), by matching braces outside strings. */
const objectAt = (text: string, start: number): string | null => {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i += 1) {
    const char = text[i];
    if (inString) {
      if (char === "\\") i += 1;
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === "{") depth += 1;
    else if (char === "}") {
      depth -= 1;
      if (depth === 0) return text.slice(start, i + 1);
    }
  }
  return null;
};

/** The last `usage` object in an answer (a JSON body or the tail of a stream), if any. */
export const usageOf = (text: string): Usage | null => {
  const key = text.lastIndexOf('"usage"');
  if (key < 0) return null;
  const start = text.indexOf("{", key);
  const object = start < 0 ? null : objectAt(text, start);
  if (object === null) return null;
  try {
    const usage = JSON.parse(object) as Record<string, unknown>;
    const count = (value: unknown) => (typeof value === "number" ? value : null);
    return {
      prompt_tokens: count(usage.prompt_tokens),
      completion_tokens: count(usage.completion_tokens),
    };
  } catch {
    return null;
  }
};

/** The last TAIL_BYTES (or a little more) of what passed through, to read `usage` from. */
class Tail {
  #chunks: Buffer[] = [];
  #size = 0;

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    while (this.#size - (this.#chunks[0]?.length ?? 0) >= TAIL_BYTES)
      this.#size -= this.#chunks.shift()?.length ?? 0;
  }

  text(): string {
    const [only] = this.#chunks;
    return this.#chunks.length === 1 && only
      ? only.toString("utf8")
      : Buffer.concat(this.#chunks).toString("utf8");
  }
}

const aborted: ForwardResult = {
  status: 0,
  firstByteMs: null,
  usage: null,
  aborted: true,
  broken: false,
};

/**
 * Forwards the request and pipes the answer into `res`. Rejects with UpstreamConnectError only
 * while nothing has been written to the client, so the caller may retry elsewhere; with
 * UpstreamTimeoutError when the neuron never answered within the idle timeout. Once the
 * answer has started, failures cut the client's connection (the only honest signal left) and
 * the promise resolves with `broken`.
 */
export const forward = async (
  res: ServerResponse,
  options: ForwardOptions,
): Promise<ForwardResult> => {
  const started = performance.now();
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-request-id": options.requestId,
  };
  if (options.accept) headers.accept = options.accept;
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let response: IncomingMessage;
  try {
    ({ response } = await post({
      target: targetOf(options.baseUrl),
      path: options.path,
      agents,
      headers,
      body: options.body,
      signal: options.signal,
      connectTimeoutMs: 5000,
      idleTimeoutMs: options.idleTimeoutMs,
    }));
  } catch (error) {
    if (options.signal.aborted) return aborted;
    if (!(error instanceof UpstreamFailure)) throw error;
    if (error.idle) throw new UpstreamTimeoutError(error);
    throw new UpstreamConnectError(error.code, error.neverArrived, error);
  }
  options.onResponse?.();
  const status = response.statusCode ?? 502;
  // The client's stream was already started (keep-alive comments during a cold load): an
  // error answer from the neuron is then relayed as one SSE error event, from its body.
  const relayError = res.headersSent && status >= 400;
  // A stream's headers go out at once; a sized body carries them with its first bytes.
  const flushHeaders = !res.headersSent && response.headers["content-length"] === undefined;
  if (!res.headersSent) res.writeHead(status, passHeaders(response, PASSED_HEADERS));
  let firstByteMs: number | null = null;
  // OpenAI answers put usage last, in a JSON body and in the final chunk of a stream alike.
  const tail = new Tail();
  const complete = await pipeBody(response, res, {
    discard: relayError,
    flushHeaders,
    stallTimeoutMs: options.stallTimeoutMs ?? 0,
    onChunk: (chunk) => {
      if (firstByteMs === null) firstByteMs = performance.now() - started;
      tail.push(chunk);
    },
  });
  if (!complete) {
    if (options.signal.aborted) return { ...aborted, status, firstByteMs };
    // Nothing of this answer reached the client yet: the caller reports it in the stream.
    if (relayError) throw new UpstreamConnectError("ECONNRESET", false, null);
    res.destroy();
    return { status, firstByteMs, usage: null, aborted: false, broken: true };
  }
  if (relayError) res.end(`data: ${tail.text().trim()}\n\n`);
  return {
    status,
    firstByteMs,
    usage: status < 400 ? usageOf(tail.text()) : null,
    aborted: false,
    broken: false,
  };
};
