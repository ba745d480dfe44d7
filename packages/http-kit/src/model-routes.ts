import { ApiError } from "./api-error.js";
import type { Span } from "./json-scan.js";

// Which requests name a model, and so take the inference fast path of both servers, and the path
// each goes on under. One table for cortex and the neuron: the neuron receives what cortex
// forwards, so both take the same set, and nothing outside it (the neuron's `/models/*`, its
// `/discovery`) can be reached through one of these paths: every rewrite below ends in `/v1/`.

/**
 * Routes below `/v1/` that name their model in the body, also reachable versionless as
 * `/v/<route>` (forwarded as `/v1/<route>`). Any other `POST /v1/*` is model-routed too, as is.
 */
const BODY_ROUTES: ReadonlySet<string> = new Set([
  "chat/completions",
  "completions",
  "embeddings",
  "responses",
  "messages",
  "messages/count_tokens",
  "rerank",
  "reranking",
  "audio/speech",
  "audio/transcriptions",
  "audio/translations",
  "images/generations",
  "images/edits",
  "images/variations",
]);

/** llama-server's own routes with a model in the body, forwarded as they are. */
const NATIVE_ROUTES: ReadonlySet<string> = new Set([
  "/rerank",
  "/reranking",
  "/infill",
  "/completion",
]);

/** `GET` routes below `/v1/` (or `/v/`) that name their model in the `model` query parameter. */
const QUERY_ROUTES: ReadonlySet<string> = new Set(["audio/voices"]);

/** The path of a request URL without its query string. */
export const pathOf = (url: string | undefined): string => {
  const path = url ?? "/";
  const query = path.indexOf("?");
  return query < 0 ? path : path.slice(0, query);
};

/**
 * The path a model-routed request goes on under (without its query string), or null for any
 * other request: every `POST /v1/<something>` as it is; `POST /rerank`, `/reranking`, `/infill`,
 * `/completion` as they are; `POST /v/<route>` as `/v1/<route>` for the routes above; and
 * `GET /v1/audio/voices` (or `/v/audio/voices`), whose model is the `model` query parameter.
 */
export const modelRoutePath = (
  method: string | undefined,
  url: string | undefined,
): string | null => {
  if (url === undefined) return null;
  if (method === "POST") {
    const path = pathOf(url);
    if (path.startsWith("/v1/")) return path.length > 4 ? path : null;
    if (NATIVE_ROUTES.has(path)) return path;
    if (path.startsWith("/v/") && BODY_ROUTES.has(path.slice(3))) return `/v1/${path.slice(3)}`;
    return null;
  }
  if (method === "GET") {
    const path = pathOf(url);
    if (path.startsWith("/v1/") && QUERY_ROUTES.has(path.slice(4))) return path;
    if (path.startsWith("/v/") && QUERY_ROUTES.has(path.slice(3))) return `/v1/${path.slice(3)}`;
  }
  return null;
};

/** Whether the request's model is its `model` query parameter (a GET) rather than its body. */
export const modelInQuery = (method: string | undefined): boolean => method === "GET";

/** `url` with its path replaced by `path`: the query string stays as the client sent it. */
export const forwardedUrl = (url: string, path: string): string => {
  const query = url.indexOf("?");
  if (query < 0) return path;
  return query === path.length && url.startsWith(path) ? url : `${path}${url.slice(query)}`;
};

/** A query string's name or value, decoded as forms are (`+` is a space); null when it is not. */
export const decodeQueryPart = (raw: string): string | null => {
  try {
    return decodeURIComponent(raw.includes("+") ? raw.replaceAll("+", " ") : raw);
  } catch {
    return null;
  }
};

/**
 * Where the value of the query parameter `name` lies in `url`, raw (percent-encoded); null when
 * it is absent. A parameter named twice is 400: servers disagree on which one counts, so the
 * model cortex routes by and the one the harness reads could differ. A name that does not
 * decode is never `name`.
 */
export const queryParamSpan = (url: string, name: string): Span | null => {
  const query = url.indexOf("?");
  if (query < 0) return null;
  let found: Span | null = null;
  let at = query + 1;
  while (at <= url.length) {
    const amp = url.indexOf("&", at);
    const end = amp < 0 ? url.length : amp;
    const eq = url.indexOf("=", at);
    const nameEnd = eq >= 0 && eq < end ? eq : end;
    if (decodeQueryPart(url.slice(at, nameEnd)) === name) {
      if (found !== null)
        throw new ApiError("invalid_request_error", `the query names ${name} more than once`, {
          param: name,
        });
      found = { start: nameEnd === end ? end : nameEnd + 1, end };
    }
    at = end + 1;
  }
  return found;
};
