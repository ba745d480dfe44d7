import type { IncomingHttpHeaders } from "node:http";
import { ERROR_CODES, type ErrorCode, ErrorEnvelope, isErrorCode } from "@cortex/protocol";
import type { z } from "zod";

// What a failed neuron call is: the error every NeuronClient call rejects with, and how an
// answer without success (an envelope, a bare status, no answer at all) becomes one.

/**
 * A neuron call that failed. `code` is the neuron's own error code when it answered one, else
 * `upstream_error` (connection failed, 5xx without an envelope, a body that is not the
 * protocol) or `upstream_timeout`. `status` is the HTTP status to pass on to cortex's client.
 */
export class NeuronCallError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryAfterS: number | null;
  readonly node: string;
  /** No HTTP response arrived at all (refused, reset, timed out before the headers). */
  readonly connectFailed: boolean;

  constructor(
    node: string,
    code: ErrorCode,
    message: string,
    options: {
      status?: number;
      retryAfterS?: number | null;
      connectFailed?: boolean;
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "NeuronCallError";
    this.node = node;
    this.code = code;
    this.status = options.status ?? ERROR_CODES[code].status;
    this.retryAfterS = options.retryAfterS ?? null;
    this.connectFailed = options.connectFailed ?? false;
  }
}

const TIMEOUT_CODES = new Set(["ETIMEDOUT", "ESOCKETTIMEDOUT"]);

const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EPIPE: "connection closed while sending",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ECONNABORTED: "connection aborted",
};

/** Seconds from a Retry-After header (delta seconds or an HTTP date); null when absent or bad. */
const retryAfterOf = (header: string | string[] | undefined, now = Date.now()): number | null => {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === "") return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
};

/** A code for a neuron answer without a known error code, from its status alone. */
const codeForStatus = (status: number): ErrorCode => {
  if (status === 401 || status === 403) return "invalid_api_key";
  if (status === 404) return "not_found";
  if (status === 413) return "payload_too_large";
  if (status === 503) return "service_unavailable";
  if (status === 504) return "upstream_timeout";
  if (status >= 400 && status < 500) return "invalid_request_error";
  return "upstream_error";
};

export const firstIssue = (error: z.ZodError): string => {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  const at = issue.path.map(String).join(".");
  return `${at ? `${at}: ` : ""}${issue.message}`;
};

export const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
};

/** A non-2xx answer: the neuron's envelope and code when it sent one, else by status. */
export const answeredError = (
  node: string,
  what: string,
  status: number,
  headers: IncomingHttpHeaders,
  body: string,
): NeuronCallError => {
  const envelope = ErrorEnvelope.safeParse(parseJson(body));
  return envelopeError(
    node,
    what,
    status,
    retryAfterOf(headers["retry-after"]),
    envelope.success ? envelope.data : null,
  );
};

/** An answer's error envelope (or none) as a NeuronCallError: its own code when it is one. */
export const envelopeError = (
  node: string,
  what: string,
  status: number,
  retryAfterS: number | null,
  envelope: ErrorEnvelope | null,
): NeuronCallError => {
  const given = envelope?.error.code ?? null;
  if (envelope && given !== null && isErrorCode(given)) {
    return new NeuronCallError(node, given, `neuron "${node}": ${envelope.error.message}`, {
      status,
      retryAfterS,
    });
  }
  const code = codeForStatus(status);
  const detail = envelope ? `: ${envelope.error.message}` : " without an error envelope";
  return new NeuronCallError(
    node,
    code,
    `neuron "${node}": ${what} answered HTTP ${status}${detail}`,
    { status: code === "upstream_error" ? 502 : status, retryAfterS },
  );
};

/** A call that got no usable answer: classified by the error's `code`, never its class. */
export const failedError = (
  node: string,
  what: string,
  error: unknown,
  timeoutMs: number,
): NeuronCallError => {
  const fields = (typeof error === "object" && error !== null ? error : {}) as {
    code?: unknown;
    response?: unknown;
    message?: unknown;
  };
  const code = typeof fields.code === "string" ? fields.code : "";
  const connectFailed = fields.response === undefined;
  const prefix = `neuron "${node}": ${what}`;
  if (code === "ERR_ABORTED") {
    return new NeuronCallError(node, "upstream_error", `${prefix} was aborted`, {
      connectFailed,
      cause: error,
    });
  }
  if (TIMEOUT_CODES.has(code)) {
    return new NeuronCallError(
      node,
      "upstream_timeout",
      `${prefix} timed out after ${timeoutMs} ms`,
      { connectFailed, cause: error },
    );
  }
  const reason =
    REASONS[code] ?? (typeof fields.message === "string" ? fields.message : "request failed");
  return new NeuronCallError(
    node,
    "upstream_error",
    `${prefix} failed: ${reason}${code && !reason.includes(code) ? ` (${code})` : ""}`,
    { connectFailed, cause: error },
  );
};
