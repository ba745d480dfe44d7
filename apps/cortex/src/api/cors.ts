import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";

// CORS for `/v1/*`, so browser clients can call cortex directly. It wraps the whole request
// listener, in front of both the inference fast path (plain node:http) and express, so every
// answer (errors included) carries the same headers. Nothing here is a credential check: a
// preflight is answered without a key, the request that follows still needs one.

/** How long a browser may reuse a preflight's answer (Chromium caps it at 2 h). */
const MAX_AGE_S = 600;

/** What `Access-Control-Request-Headers` may name in an answer: at most this many … */
const MAX_HEADER_NAMES = 64;
/** … of at most this many characters in all. */
const MAX_HEADERS_CHARS = 4096;

/** An HTTP header name (RFC 9110's token). */
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

const ALLOWED_METHODS = "GET, POST, OPTIONS";

/** Answer headers a browser script may read: who served, the request's id, when to retry. */
const EXPOSED_HEADERS =
  "x-request-id, x-cortex-node, x-cortex-cold-start, x-cortex-queue-ms, retry-after";

const isV1 = (url: string | undefined): boolean =>
  url !== undefined && (url === "/v1" || url.startsWith("/v1/") || url.startsWith("/v1?"));

/**
 * The header names a preflight asked for, kept only when each is a valid name, bounded in
 * count and size (a longer list is cut there): what the answer allows is never more than asked.
 */
export const requestedHeaders = (value: string | undefined): string => {
  if (value === undefined) return "";
  const names: string[] = [];
  let chars = 0;
  for (const part of value.slice(0, MAX_HEADERS_CHARS).split(",")) {
    const name = part.trim().toLowerCase();
    if (!HEADER_NAME.test(name)) continue;
    if (names.length >= MAX_HEADER_NAMES || chars + name.length > MAX_HEADERS_CHARS) break;
    names.push(name);
    chars += name.length + 2;
  }
  return names.join(", ");
};

/**
 * Wraps `listener` with CORS for `origins` (`"*"` allows any). For `/v1/*`: an `OPTIONS`
 * preflight (it has `Origin` and `Access-Control-Request-Method`) from an allowed origin is
 * answered 204 here, before any key check; every other request from an allowed origin gets
 * `Access-Control-Allow-Origin` (its origin) and `Vary: Origin` on its answer, whatever answers
 * it. Requests from other origins, or without one, get no CORS headers and go on as before.
 * No origins: `listener` itself, untouched.
 */
export const withCors = (
  origins: readonly string[],
  listener: RequestListener,
): RequestListener => {
  if (origins.length === 0) return listener;
  const any = origins.includes("*");
  const allowed = new Set(origins);
  return (req: IncomingMessage, res: ServerResponse) => {
    const origin = req.headers.origin;
    if (origin === undefined || !isV1(req.url) || !(any || allowed.has(origin)))
      return listener(req, res);
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("vary", "origin");
    const method = req.headers["access-control-request-method"];
    if (req.method === "OPTIONS" && method !== undefined) {
      res.setHeader(
        "vary",
        "origin, access-control-request-method, access-control-request-headers",
      );
      res.setHeader("access-control-allow-methods", ALLOWED_METHODS);
      const headers = requestedHeaders(req.headers["access-control-request-headers"]);
      if (headers !== "") res.setHeader("access-control-allow-headers", headers);
      res.setHeader("access-control-max-age", String(MAX_AGE_S));
      res.writeHead(204);
      res.end();
      // A body it may carry is drained, so the connection can take the next request.
      req.resume();
      return;
    }
    res.setHeader("access-control-expose-headers", EXPOSED_HEADERS);
    listener(req, res);
  };
};
