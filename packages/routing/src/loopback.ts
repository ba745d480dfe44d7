/**
 * Hosts that mean "this machine" to whoever reported them. The WHATWG URL parser keeps IPv6
 * hosts in brackets (`[::1]`) and compresses IPv4-mapped ones (`[::ffff:7f00:1]`), so the
 * bracketed forms are what a parsed URL actually contains; a bare `::1` never appears there.
 */
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set([
  "localhost",
  "0.0.0.0",
  "[::1]",
  "[::]",
  "[::ffff:7f00:1]",
  "[0:0:0:0:0:0:0:1]",
]);

export const isLoopbackHost = (hostname: string): boolean => {
  const host = hostname.toLowerCase();
  if (LOOPBACK_HOSTS.has(host) || host === "::1") return true;
  if (host.endsWith(".localhost")) return true;
  // 127.0.0.0/8; the parser has already normalised dotted-quad forms.
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
};

const parse = (value: string): URL | null => {
  try {
    return new URL(value);
  } catch {
    return null;
  }
};

const withoutTrailingSlash = (href: string): string => href.replace(/\/+$/, "");

/**
 * Rewrites a URL a neuron reported about itself so cortex can reach it: a loopback host becomes
 * the host cortex uses for that neuron; port, path and query are kept; a trailing slash is
 * dropped. A non-loopback host is left alone. Returns null, never throws, when either URL is
 * malformed, so the caller can fall back to the neuron's configured URL.
 */
export const rewriteLoopback = (endpoint: string, neuronUrl: string): string | null => {
  const target = parse(endpoint.trim());
  const neuron = parse(neuronUrl.trim());
  if (target === null || neuron === null || target.hostname === "") return null;
  if (isLoopbackHost(target.hostname)) target.hostname = neuron.hostname;
  return withoutTrailingSlash(target.href);
};
