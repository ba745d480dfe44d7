import { Agent as HttpAgent, type IncomingHttpHeaders } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { StringDecoder } from "node:string_decoder";
import {
  DiscoveryAnswer,
  EndpointAnswer,
  ErrorEnvelope,
  EstimateAnswer,
  type EstimateRequest,
  HealthAnswer,
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
import {
  answeredError,
  envelopeError,
  failedError,
  firstIssue,
  NeuronCallError,
  parseJson,
} from "./call-error.js";
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

/** `event: error` of a streamed load: an error envelope plus the status it would have had. */
const StreamedError = ErrorEnvelope.extend({ status: z.int().optional() });

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
    throw answeredError(
      this.name,
      `GET /${path}`,
      response.statusCode,
      response.headers,
      response.body,
    );
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
      throw failedError(this.name, `${method} /${path}`, error, timeoutMs);
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
      throw answeredError(this.name, what, response.statusCode, response.headers, response.body);
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
              ? envelopeError(this.name, what, streamed.data.status ?? 502, null, streamed.data)
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
          } else settle(answeredError(this.name, what, status, headers, body));
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
        settle(failedError(this.name, what, error, timeoutMs));
      });
    });
  }
}
