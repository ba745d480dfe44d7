import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";

// What of a client's request head goes on to the next hop (cortex → neuron, neuron → harness):
// everything that describes the call (`anthropic-version`, `anthropic-beta`, `openai-beta`,
// `x-session-id`, `accept`, `content-type`, …), so a harness sees what the client asked for,
// and nothing that belongs to the hop, to the proxy or to the client's credentials. How much
// passes is bounded by node's own limits on what it reads: 16 KiB of head
// (`--max-http-header-size`) and 2000 headers (`server.maxHeadersCount`); what passes is a
// subset of that.

/** Dropped by name: hop-by-hop headers, the connection's, credentials and cookies. */
const DROPPED = new Set([
  // Hop-by-hop (RFC 9110 §7.6.1): they describe this connection, not the request.
  "connection",
  "keep-alive",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  // Set for the hop: the neuron's host, the body's length as sent (recomputed).
  "host",
  "content-length",
  // The proxy has read the body already (`expect: 100-continue` was for it), and the hop must
  // answer uncompressed: cortex reads `usage` from the answer, and neither passes on a
  // content-encoding.
  "expect",
  "accept-encoding",
  // Every credential of the client's and its cookies: the neuron gets its own token only, and
  // a harness none (the neuron's token is this header too).
  "authorization",
  "x-api-key",
  "api-key",
  "cookie",
  // Set by cortex: its own request id (the neuron passes cortex's on to the harness).
  "x-request-id",
]);

/** Other connection-scoped headers the client named in its `Connection` header. */
const connectionNamed = (connection: string | undefined): ReadonlySet<string> | null => {
  if (connection === undefined) return null;
  const names = connection
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== "" && name !== "close" && name !== "keep-alive");
  return names.length === 0 ? null : new Set(names);
};

/**
 * The client's request headers to send on to the next hop: all but the hop-by-hop ones (those
 * above, `proxy-*`, and any the client's `Connection` header names), `host`, `content-length`,
 * `expect`, `accept-encoding`, cookies, every credential (`authorization`, `x-api-key`,
 * `api-key`, `proxy-authorization`) and `x-request-id` (the proxy sets it).
 */
export const forwardedHeaders = (headers: IncomingHttpHeaders): OutgoingHttpHeaders => {
  const named = connectionNamed(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (DROPPED.has(name) || name.startsWith("proxy-") || named?.has(name)) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
};
