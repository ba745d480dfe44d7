import {
  ApiLoadAnswer,
  type ApiLoadRequest,
  ApiNodeDrainAnswer,
  ApiNodeRemoveAnswer,
  ApiUnloadAnswer,
  type ApiUnloadRequest,
  CatalogueReport,
  FleetAnswer,
  FleetEvent,
} from "@cortex/protocol";
import { createSseParser } from "@cortex/protocol/sse";
import type { z } from "zod";
import { CtlError } from "./ctl-error.js";

// The admin API over Node's fetch. Every failure becomes a CtlError whose message an operator
// can act on: the server's own message for an error answer, "cannot reach" for the network.

export interface ClientOptions {
  readonly url: string;
  readonly token: string | undefined;
}

interface ErrorLike {
  readonly code?: unknown;
  readonly message?: unknown;
  readonly cause?: unknown;
}

/** Network failures carry their code on `cause` (undici); classify by code, not by class. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
]);

const codeOf = (error: unknown): string | undefined => {
  for (let current = error, depth = 0; current && depth < 4; depth += 1) {
    const { code, cause } = current as ErrorLike;
    if (typeof code === "string") return code;
    current = cause;
  }
  return undefined;
};

/** The message of an OpenAI error envelope, or the start of whatever else the body was. */
export const errorMessageOf = (status: number, body: string): string => {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown; code?: unknown } };
    const message = parsed.error?.message;
    if (typeof message === "string") {
      const code = typeof parsed.error?.code === "string" ? `${parsed.error.code}, ` : "";
      return `${message} (${code}HTTP ${status})`;
    }
  } catch {
    // Not JSON: a proxy's page or plain text.
  }
  const text = body.trim().slice(0, 200);
  return text === "" ? `HTTP ${status}` : `${text} (HTTP ${status})`;
};

/**
 * A 401 from the admin API, said the way an operator fixes it: cortex's `admin_token` goes in
 * `--token` or `CORTEX_ADMIN_TOKEN` (cortex's own code, `invalid_api_key`, is about client keys).
 */
export const unauthorizedMessage = (url: string, tokenSent: boolean): string =>
  `${tokenSent ? `cortex at ${url} refused the admin token` : `cortex at ${url} needs its admin token`} (HTTP 401): pass cortex's admin_token with --token <token> or in CORTEX_ADMIN_TOKEN`;

export class CortexClient {
  readonly url: string;
  readonly #base: URL;
  readonly #token: string | undefined;

  constructor(options: ClientOptions) {
    try {
      this.#base = new URL(options.url.endsWith("/") ? options.url : `${options.url}/`);
    } catch {
      throw new CtlError(`invalid cortex URL "${options.url}" (try http://127.0.0.1:31313)`);
    }
    this.url = options.url;
    this.#token = options.token === "" ? undefined : options.token;
  }

  async #fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.#token !== undefined) headers.set("authorization", `Bearer ${this.#token}`);
    let response: Response;
    try {
      response = await fetch(new URL(path.replace(/^\//, ""), this.#base), { ...init, headers });
    } catch (error) {
      if ((error as ErrorLike).code === "ABORT_ERR" || (error as Error).name === "AbortError")
        throw error;
      const code = codeOf(error);
      if (code === "UND_ERR_HEADERS_TIMEOUT") {
        // Node's fetch waits 300 s for an answer's headers; a longer cold load runs on in cortex.
        throw new CtlError(
          `cortex at ${this.url} did not answer within 5 minutes; a load may still be running (watch: cortexctl events --follow)`,
          1,
          { cause: error },
        );
      }
      const why = code && NETWORK_CODES.has(code) ? code : String((error as Error).message);
      throw new CtlError(`cannot reach cortex at ${this.url} (${why})`, 1, { cause: error });
    }
    if (response.status === 401) {
      await response.body?.cancel().catch(() => {});
      throw new CtlError(unauthorizedMessage(this.url, this.#token !== undefined));
    }
    if (!response.ok) {
      throw new CtlError(errorMessageOf(response.status, await response.text().catch(() => "")));
    }
    return response;
  }

  async #json<S extends z.ZodType>(schema: S, path: string, init?: RequestInit) {
    const response = await this.#fetch(path, init);
    const parsed = schema.safeParse(await response.json().catch(() => undefined));
    if (!parsed.success) {
      throw new CtlError(
        `cortex answered ${path} with something unexpected; is ${this.url} cortex?`,
      );
    }
    return parsed.data as z.output<S>;
  }

  #post<S extends z.ZodType>(schema: S, path: string, body: unknown, signal?: AbortSignal) {
    return this.#json(schema, path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
  }

  fleet(): Promise<FleetAnswer> {
    return this.#json(FleetAnswer, "/api/fleet");
  }

  /** The catalogue with what cortex knows of each model's GPU memory, and its problems. */
  catalogue(): Promise<CatalogueReport> {
    return this.#json(CatalogueReport, "/api/catalogue");
  }

  /** Answers once the model is loaded, which may take minutes (see the headers timeout). */
  load(request: ApiLoadRequest, signal?: AbortSignal): Promise<ApiLoadAnswer> {
    return this.#post(ApiLoadAnswer, "/api/models/load", request, signal);
  }

  unload(request: ApiUnloadRequest): Promise<ApiUnloadAnswer> {
    return this.#post(ApiUnloadAnswer, "/api/models/unload", request);
  }

  /** Takes a node out for maintenance: `draining` now, `drained` once its models unloaded. */
  drain(node: string): Promise<ApiNodeDrainAnswer> {
    return this.#post(ApiNodeDrainAnswer, `/api/nodes/${encodeURIComponent(node)}/drain`, {});
  }

  /** Puts a drained node back in service. */
  resume(node: string): Promise<ApiNodeDrainAnswer> {
    return this.#post(ApiNodeDrainAnswer, `/api/nodes/${encodeURIComponent(node)}/resume`, {});
  }

  /** Forgets a joined node (`DELETE /api/neurons/{name}`); a static one is refused (409). */
  removeNode(node: string): Promise<ApiNodeRemoveAnswer> {
    return this.#json(ApiNodeRemoveAnswer, `/api/neurons/${encodeURIComponent(node)}`, {
      method: "DELETE",
    });
  }

  async logs(model: string, node: string | undefined): Promise<string> {
    const query = node === undefined ? "" : `?node=${encodeURIComponent(node)}`;
    const response = await this.#fetch(`/api/models/${encodeURIComponent(model)}/logs${query}`);
    return response.text();
  }

  /**
   * Opens `/api/events` and resolves once cortex answered, which is when it has subscribed this
   * stream: an action started after that cannot emit an event the stream misses.
   */
  async events(options: { signal: AbortSignal; since?: string }): Promise<EventStream> {
    const query = options.since === undefined ? "" : `?since=${encodeURIComponent(options.since)}`;
    const response = await this.#fetch(`/api/events${query}`, {
      headers: { accept: "text/event-stream" },
      signal: options.signal,
    });
    return { items: readEvents(response, options.signal) };
  }
}

export type StreamItem =
  | { readonly kind: "event"; readonly event: FleetEvent }
  | { readonly kind: "heartbeat" };

export interface EventStream {
  /** Ends when cortex ends the stream or the signal aborts. */
  readonly items: AsyncIterable<StreamItem>;
}

async function* readEvents(response: Response, signal: AbortSignal): AsyncIterable<StreamItem> {
  const body = response.body;
  if (!body) return;
  const parser = createSseParser();
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (signal.aborted) return;
        throw new CtlError(`the event stream from cortex broke: ${(error as Error).message}`, 1, {
          cause: error,
        });
      }
      if (chunk.done) return;
      for (const message of parser.push(decoder.decode(chunk.value, { stream: true }))) {
        if (message.kind === "comment") {
          yield { kind: "heartbeat" };
          continue;
        }
        let json: unknown;
        try {
          json = JSON.parse(message.data);
        } catch {
          continue;
        }
        // An event type newer than this CLI is skipped rather than fatal.
        const parsed = FleetEvent.safeParse(json);
        if (parsed.success) yield { kind: "event", event: parsed.data };
      }
    }
  } finally {
    reader.releaseLock();
  }
}
