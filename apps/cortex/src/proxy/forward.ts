import { Agent, type ClientRequest } from "node:http";
import type { Response } from "express";
import got, { type RequestError } from "got";

// Streams one client request to a neuron and the answer back, chunk by chunk, never buffering
// a stream. Only headers that describe the body pass either way: the client's credentials,
// cookies and hop-by-hop headers stay behind, and the neuron's token is added.

const agent = new Agent({ keepAlive: true, maxSockets: 4096, scheduling: "lifo" });

const client = got.extend({
  agent: { http: agent },
  retry: { limit: 0 },
  throwHttpErrors: false,
  decompress: false,
  followRedirect: false,
});

/** Upstream answer headers worth passing to the client. */
const PASSED_HEADERS = ["content-type", "cache-control", "x-accel-buffering", "retry-after"];

/** How much of the end of an answer is kept to read `usage` from. */
const TAIL_BYTES = 16 << 10;

/** Errors that mean the request never reached the neuron: safe to send it elsewhere. */
const NEVER_ARRIVED = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

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
  /** Full upstream URL: the neuron's base URL plus the client's path. */
  readonly url: string;
  readonly body: Buffer | string;
  readonly token: string;
  readonly requestId: string;
  readonly accept: string | undefined;
  /** No byte for this long (before or during the answer) fails the request; never a total limit. */
  readonly idleTimeoutMs: number;
  readonly signal: AbortSignal;
  /** Called when the neuron's answer starts, before anything of it is written. */
  readonly onResponse?: () => void;
}

const errorCode = (error: unknown): string =>
  (error as RequestError | undefined)?.code ?? "ERR_UNKNOWN";

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

/**
 * Forwards the request and pipes the answer into `res`. Rejects with UpstreamConnectError only
 * while nothing has been written to the client, so the caller may retry elsewhere; with
 * UpstreamTimeoutError when the neuron never answered within the idle timeout. Once the
 * answer has started, failures cut the client's connection (the only honest signal left) and
 * the promise resolves with `broken`.
 */
export const forward = (res: Response, options: ForwardOptions): Promise<ForwardResult> =>
  new Promise<ForwardResult>((resolve, reject) => {
    const started = performance.now();
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "x-request-id": options.requestId,
    };
    if (options.accept) headers.accept = options.accept;
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const upstream = client.stream.post(options.url, {
      body: options.body,
      headers,
      signal: options.signal,
      timeout: { connect: 5000, socket: options.idleTimeoutMs },
    });
    let status = 0;
    let firstByteMs: number | null = null;
    let keep: Buffer[] = [];
    let kept = 0;
    let settled = false;
    const finish = (outcome: { aborted?: boolean; broken?: boolean } = {}) => {
      if (settled) return;
      settled = true;
      const text = Buffer.concat(keep).toString("utf8");
      keep = [];
      resolve({
        status,
        firstByteMs,
        usage: status < 400 ? usageOf(text) : null,
        aborted: outcome.aborted ?? false,
        broken: outcome.broken ?? false,
      });
    };
    // A kept-alive socket whose neuron died meanwhile fails with a reset as soon as it is used:
    // the request never reached a live process, so it may go elsewhere (Node's advice for
    // `reusedSocket`). A reset on a fresh connection may come after the neuron started on it.
    let reusedSocket = false;
    upstream.on("request", (request: ClientRequest) => {
      reusedSocket = request.reusedSocket;
    });
    // Set when the client has received something of the neuron's answer; from then on a
    // failure can only cut the connection.
    let answered = false;
    // The client's stream was already started (keep-alive comments during a cold load): an
    // error answer from the neuron is then relayed as an SSE error event.
    let relayError = false;
    upstream.on(
      "response",
      (answer: { statusCode: number; headers: Record<string, string | string[] | undefined> }) => {
        options.onResponse?.();
        status = answer.statusCode;
        if (res.headersSent) {
          relayError = answer.statusCode >= 400;
          return;
        }
        res.status(answer.statusCode);
        for (const name of PASSED_HEADERS) {
          const value = answer.headers[name];
          if (value !== undefined) res.setHeader(name, value);
        }
        res.flushHeaders();
        answered = true;
      },
    );
    upstream.on("data", (chunk: Buffer) => {
      if (firstByteMs === null) firstByteMs = performance.now() - started;
      // Keep the tail to read usage from afterwards: OpenAI answers put it last, in a JSON body
      // and in the final chunk of a stream alike.
      keep.push(chunk);
      kept += chunk.length;
      while (kept - (keep[0]?.length ?? 0) >= TAIL_BYTES) kept -= keep.shift()?.length ?? 0;
      if (relayError) return;
      answered = true;
      // Backpressure: a slow client pauses the neuron's stream instead of growing a buffer.
      if (!res.write(chunk)) {
        upstream.pause();
        res.once("drain", () => upstream.resume());
      }
    });
    upstream.on("end", () => {
      if (relayError) res.write(`data: ${Buffer.concat(keep).toString("utf8").trim()}\n\n`);
      res.end();
      finish();
    });
    upstream.on("error", (error: unknown) => {
      if (options.signal.aborted) return finish({ aborted: true });
      if (answered) {
        res.destroy();
        return finish({ broken: true });
      }
      if (settled) return;
      settled = true;
      const code = errorCode(error);
      const connectPhase = (error as { event?: string }).event === "connect";
      if (code === "ETIMEDOUT" && !connectPhase) return reject(new UpstreamTimeoutError(error));
      reject(
        new UpstreamConnectError(
          code,
          NEVER_ARRIVED.has(code) ||
            (code === "ETIMEDOUT" && connectPhase) ||
            (reusedSocket && (code === "ECONNRESET" || code === "EPIPE")),
          error,
        ),
      );
    });
    options.signal.addEventListener("abort", () => finish({ aborted: true }), { once: true });
  });
