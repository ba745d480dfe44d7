import { Agent as HttpAgent, type IncomingHttpHeaders } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { StringDecoder } from "node:string_decoder";
import {
  DiscoveryAnswer,
  EndpointAnswer,
  ERROR_CODES,
  type ErrorCode,
  ErrorEnvelope,
  EstimateAnswer,
  type EstimateRequest,
  HealthAnswer,
  isErrorCode,
  LoadAnswer,
  LoadProgress,
  type LoadRequest,
  ModelsAnswer,
  UnloadAnswer,
  type UnloadRequest,
} from "@cortex/protocol";
import { createSseParser } from "@cortex/protocol/sse";
import got, { type Got } from "got";
import { z } from "zod";
import { type EventStream, type EventStreamHandlers, openEventStream } from "./event-stream.js";

export interface NeuronClientOptions {
  readonly name: string;
  /** The neuron's base URL from cortex's config. */
  readonly url: string;
  /** Bearer token; empty: no Authorization header. */
  readonly token: string;
  /** Default per-call timeout. */
  readonly timeoutMs: number;
}

export interface CallOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface LoadOptions extends CallOptions {
  /** Streams the load (`Accept: text/event-stream`) and reports each progress event. */
  readonly onProgress?: (progress: LoadProgress) => void;
}

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

/** `event: error` of a streamed load: an error envelope plus the status it would have had. */
const StreamedError = ErrorEnvelope.extend({ status: z.int().optional() });

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

const firstIssue = (error: z.ZodError): string => {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  const at = issue.path.map(String).join(".");
  return `${at ? `${at}: ` : ""}${issue.message}`;
};

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
};

/**
 * One neuron's HTTP API, over got with a keep-alive agent. Every answer is parsed with the
 * protocol's (lenient) schemas; every failure is a NeuronCallError. got never retries: whether
 * to try again, and where, is the caller's decision.
 */
export class NeuronClient {
  readonly name: string;
  readonly url: string;
  readonly #timeoutMs: number;
  readonly #token: string;
  readonly #got: Got;
  readonly #agents: { http: HttpAgent; https: HttpsAgent };

  constructor(options: NeuronClientOptions) {
    this.name = options.name;
    this.url = options.url.replace(/\/+$/, "");
    this.#timeoutMs = options.timeoutMs;
    this.#token = options.token;
    this.#agents = {
      http: new HttpAgent({ keepAlive: true }),
      https: new HttpsAgent({ keepAlive: true }),
    };
    this.#got = got.extend({
      prefixUrl: this.url,
      headers: {
        "user-agent": "cortex",
        ...(options.token === "" ? {} : { authorization: `Bearer ${options.token}` }),
      },
      agent: this.#agents,
      retry: { limit: 0 },
      throwHttpErrors: false,
      followRedirect: false,
      responseType: "text",
    });
  }

  health(options: CallOptions = {}): Promise<HealthAnswer> {
    return this.#call("GET", "health", HealthAnswer, options);
  }

  discovery(options: CallOptions = {}): Promise<DiscoveryAnswer> {
    return this.#call("GET", "discovery", DiscoveryAnswer, options);
  }

  models(options: CallOptions = {}): Promise<ModelsAnswer> {
    return this.#call("GET", "models", ModelsAnswer, options);
  }

  /** `POST /models/load`; with `onProgress` the load streams its progress as SSE. */
  load(request: LoadRequest, options: LoadOptions = {}): Promise<LoadAnswer> {
    if (options.onProgress) return this.#streamLoad(request, options, options.onProgress);
    return this.#call("POST", "models/load", LoadAnswer, options, request);
  }

  /**
   * `POST /models/estimate`: the GPU memory the load these fields describe would take, worked
   * out from the model file's header. 422 `not_estimable` when the source is not GGUF.
   */
  estimate(request: EstimateRequest, options: CallOptions = {}): Promise<EstimateAnswer> {
    return this.#call("POST", "models/estimate", EstimateAnswer, options, request);
  }

  unload(request: UnloadRequest, options: CallOptions = {}): Promise<UnloadAnswer> {
    return this.#call("POST", "models/unload", UnloadAnswer, options, request);
  }

  endpoint(id: string, options: CallOptions = {}): Promise<EndpointAnswer> {
    return this.#call("GET", `models/${encodeURIComponent(id)}/endpoint`, EndpointAnswer, options);
  }

  /** Recent harness output of a model, as text. */
  async logs(id: string, options: CallOptions = {}): Promise<string> {
    const path = `models/${encodeURIComponent(id)}/logs`;
    const response = await this.#send("GET", path, options);
    if (response.statusCode >= 200 && response.statusCode < 300) return response.body;
    throw this.#answered(`GET /${path}`, response.statusCode, response.headers, response.body);
  }

  /** `GET /events`: the neuron's changes as they happen, on a connection of its own. */
  events(handlers: EventStreamHandlers): EventStream {
    return openEventStream(this.url, this.#token, handlers);
  }

  /** Closes the kept-alive connections (cortex shutdown, or a neuron removed from config). */
  close(): void {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  async #send(method: "GET" | "POST", path: string, options: CallOptions, json?: unknown) {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    try {
      return await this.#got(path, {
        method,
        ...(json === undefined ? {} : { json }),
        timeout: { request: timeoutMs },
        signal: options.signal,
        responseType: "text",
      });
    } catch (error) {
      throw this.#failed(`${method} /${path}`, error, timeoutMs);
    }
  }

  async #call<S extends z.ZodType>(
    method: "GET" | "POST",
    path: string,
    schema: S,
    options: CallOptions,
    json?: unknown,
  ): Promise<z.output<S>> {
    const response = await this.#send(method, path, options, json);
    const what = `${method} /${path}`;
    if (response.statusCode < 200 || response.statusCode >= 300)
      throw this.#answered(what, response.statusCode, response.headers, response.body);
    return this.#parse(what, schema, parseJson(response.body));
  }

  #parse<S extends z.ZodType>(what: string, schema: S, value: unknown): z.output<S> {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    throw new NeuronCallError(
      this.name,
      "upstream_error",
      value === undefined
        ? `neuron "${this.name}": ${what} answered something that is not JSON`
        : `neuron "${this.name}": ${what} answered an unexpected body (${firstIssue(parsed.error)})`,
    );
  }

  /** A non-2xx answer: the neuron's envelope and code when it sent one, else by status. */
  #answered(
    what: string,
    status: number,
    headers: IncomingHttpHeaders,
    body: string,
  ): NeuronCallError {
    const envelope = ErrorEnvelope.safeParse(parseJson(body));
    return this.#fromEnvelope(
      what,
      status,
      retryAfterOf(headers["retry-after"]),
      envelope.success ? envelope.data : null,
    );
  }

  #fromEnvelope(
    what: string,
    status: number,
    retryAfterS: number | null,
    envelope: ErrorEnvelope | null,
  ): NeuronCallError {
    const given = envelope?.error.code ?? null;
    if (envelope && given !== null && isErrorCode(given)) {
      return new NeuronCallError(
        this.name,
        given,
        `neuron "${this.name}": ${envelope.error.message}`,
        {
          status,
          retryAfterS,
        },
      );
    }
    const code = codeForStatus(status);
    const detail = envelope ? `: ${envelope.error.message}` : " without an error envelope";
    return new NeuronCallError(
      this.name,
      code,
      `neuron "${this.name}": ${what} answered HTTP ${status}${detail}`,
      { status: code === "upstream_error" ? 502 : status, retryAfterS },
    );
  }

  /** A call that got no usable answer: classified by the error's `code`, never its class. */
  #failed(what: string, error: unknown, timeoutMs: number): NeuronCallError {
    const fields = (typeof error === "object" && error !== null ? error : {}) as {
      code?: unknown;
      response?: unknown;
      message?: unknown;
    };
    const code = typeof fields.code === "string" ? fields.code : "";
    const connectFailed = fields.response === undefined;
    const prefix = `neuron "${this.name}": ${what}`;
    if (code === "ERR_ABORTED") {
      return new NeuronCallError(this.name, "upstream_error", `${prefix} was aborted`, {
        connectFailed,
        cause: error,
      });
    }
    if (TIMEOUT_CODES.has(code)) {
      return new NeuronCallError(
        this.name,
        "upstream_timeout",
        `${prefix} timed out after ${timeoutMs} ms`,
        { connectFailed, cause: error },
      );
    }
    const reason =
      REASONS[code] ?? (typeof fields.message === "string" ? fields.message : "request failed");
    return new NeuronCallError(
      this.name,
      "upstream_error",
      `${prefix} failed: ${reason}${code && !reason.includes(code) ? ` (${code})` : ""}`,
      { connectFailed, cause: error },
    );
  }

  /** A load with progress: SSE when the neuron streams, a plain JSON answer otherwise. */
  #streamLoad(
    request: LoadRequest,
    options: LoadOptions,
    onProgress: (progress: LoadProgress) => void,
  ): Promise<LoadAnswer> {
    const what = "POST /models/load";
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    return new Promise<LoadAnswer>((resolve, reject) => {
      let settled = false;
      const settle = (error: NeuronCallError | null, answer?: LoadAnswer) => {
        if (settled) return;
        settled = true;
        if (error) reject(error);
        else if (answer) resolve(answer);
      };
      const stream = this.#got.stream("models/load", {
        method: "POST",
        json: request,
        headers: { accept: "text/event-stream" },
        timeout: { request: timeoutMs },
        signal: options.signal,
      });
      let sse = false;
      let status = 0;
      let headers: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      const decoder = new StringDecoder("utf8");
      const sseParser = createSseParser();
      const onEvent = (event: string, data: string) => {
        if (settled) return;
        const value = parseJson(data);
        if (event === "progress") {
          const progress = LoadProgress.safeParse(value);
          // A malformed progress event is not worth failing a load over.
          if (!progress.success) return;
          try {
            onProgress(progress.data);
          } catch {
            // The listener's failure is its own; the load carries on.
          }
        } else if (event === "result") {
          try {
            settle(null, this.#parse(what, LoadAnswer, value));
          } catch (error) {
            settle(error as NeuronCallError);
          }
        } else if (event === "error") {
          const streamed = StreamedError.safeParse(value);
          settle(
            streamed.success
              ? this.#fromEnvelope(what, streamed.data.status ?? 502, null, streamed.data)
              : new NeuronCallError(
                  this.name,
                  "upstream_error",
                  `neuron "${this.name}": ${what} streamed an error that is not an error envelope`,
                ),
          );
        }
      };
      const parse = (text: string) => {
        for (const message of sseParser.push(text))
          if (message.kind === "message") onEvent(message.event, message.data);
      };
      stream.on("response", (response: { statusCode: number; headers: IncomingHttpHeaders }) => {
        status = response.statusCode;
        headers = response.headers;
        sse =
          status >= 200 &&
          status < 300 &&
          String(headers["content-type"] ?? "").includes("text/event-stream");
      });
      stream.on("data", (chunk: Buffer) => {
        if (sse) parse(decoder.write(chunk));
        else chunks.push(chunk);
      });
      stream.on("end", () => {
        if (settled) return;
        if (!sse) {
          const body = Buffer.concat(chunks).toString("utf8");
          if (status >= 200 && status < 300) {
            try {
              settle(null, this.#parse(what, LoadAnswer, parseJson(body)));
            } catch (error) {
              settle(error as NeuronCallError);
            }
          } else settle(this.#answered(what, status, headers, body));
          return;
        }
        parse(`${decoder.end()}\n\n`);
        settle(
          new NeuronCallError(
            this.name,
            "upstream_error",
            `neuron "${this.name}": ${what} stream ended without a result`,
          ),
        );
      });
      stream.on("error", (error: unknown) => {
        settle(this.#failed(what, error, timeoutMs));
      });
    });
  }
}
