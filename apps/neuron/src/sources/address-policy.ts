// Where a download may go, decided from the URL alone. A source is checked by parse-source
// (https, hf:, plain http only to loopback, no credentials); every redirect hop is held to the
// same rules, and may not lead somewhere more internal than where it came from: a public server
// must not be able to point the neuron at its own loopback services or at the private network.
//
// Only literal addresses and localhost names are classified. A public name that resolves to a
// private address (DNS rebinding, `127.0.0.1.nip.io`) passes: policing it would need the
// connection pinned to an address checked after resolution, which fetch does not offer.

/** How internal a host is; `unspecified` (0.0.0.0, ::) means "this host" and is never reachable. */
export type HostClass = "public" | "private" | "loopback" | "unspecified";

/** A tagged answer: follow the URL, or refuse it with a reason that fits after "refusing …: ". */
export type Verdict =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: string };

const ALLOWED: Verdict = { allowed: true };
const refuse = (reason: string): Verdict => ({ allowed: false, reason });

/** Higher is more internal; a redirect may keep or lower it, never raise it. */
const RANK: Readonly<Record<Exclude<HostClass, "unspecified">, number>> = {
  public: 0,
  private: 1,
  loopback: 2,
};

const parseIpv4 = (host: string): number[] | null => {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!match) return null;
  const octets = match.slice(1).map(Number);
  return octets.every((octet) => octet <= 255) ? octets : null;
};

/** Eight 16-bit groups, or null when `host` is not an IPv6 literal (brackets optional). */
const parseIpv6 = (host: string): number[] | null => {
  let text = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (!text.includes(":")) return null;
  const zone = text.indexOf("%");
  if (zone !== -1) text = text.slice(0, zone);
  // A dotted IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const dotted = /(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  if (dotted?.[1] !== undefined) {
    const octets = parseIpv4(dotted[1]);
    if (!octets) return null;
    const [a = 0, b = 0, c = 0, d = 0] = octets;
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groupsOf = (part: string): string[] => (part === "" ? [] : part.split(":"));
  const head = groupsOf(halves[0] ?? "");
  const tail = groupsOf(halves[1] ?? "");
  if (![...head, ...tail].every((group) => /^[0-9a-f]{1,4}$/i.test(group))) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  return [...head, ...Array<string>(missing).fill("0"), ...tail].map((group) =>
    Number.parseInt(group, 16),
  );
};

const classifyIpv4 = ([a = 0, b = 0]: readonly number[]): HostClass => {
  if (a === 0) return "unspecified"; // 0.0.0.0/8: "this network", which Linux connects to itself
  if (a === 127) return "loopback";
  if (
    a === 10 ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 169 && b === 254) ||
    (a === 100 && b >= 64 && b <= 127) || // carrier-grade NAT, often an internal network
    a >= 224 // multicast, reserved, broadcast
  ) {
    return "private";
  }
  return "public";
};

const classifyIpv6 = (words: readonly number[]): HostClass => {
  const [w0 = 0, w1 = 0, w2 = 0, w3 = 0, w4 = 0, w5 = 0, w6 = 0, w7 = 0] = words;
  const embedded = [w6 >> 8, w6 & 0xff, w7 >> 8, w7 & 0xff];
  const zeroTo = (count: number) => words.slice(0, count).every((word) => word === 0);
  if (zeroTo(8)) return "unspecified";
  if (zeroTo(7) && w7 === 1) return "loopback";
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d), the deprecated
  // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) forms reach the embedded IPv4
  // address, so they are what that address is.
  if (
    (zeroTo(5) && w5 === 0xffff) ||
    (zeroTo(4) && w4 === 0xffff && w5 === 0) ||
    zeroTo(6) ||
    (w0 === 0x64 && w1 === 0xff9b && w2 === 0 && w3 === 0 && w4 === 0 && w5 === 0)
  ) {
    return classifyIpv4(embedded);
  }
  if ((w0 & 0xfe00) === 0xfc00) return "private"; // fc00::/7 unique local
  if ((w0 & 0xffc0) === 0xfe80 || (w0 & 0xffc0) === 0xfec0) return "private"; // link/site-local
  if ((w0 & 0xff00) === 0xff00) return "private"; // multicast
  return "public";
};

/**
 * The class of a URL's hostname as the WHATWG parser leaves it (IPv4 in dotted decimal whatever
 * form it was written in, IPv6 in brackets). Names other than localhost ones are `public`: see
 * the note at the top about names that resolve to private addresses.
 */
export const classifyHost = (hostname: string): HostClass => {
  const host = hostname.toLowerCase().replace(/\.$/, "");
  const v4 = parseIpv4(host);
  if (v4) return classifyIpv4(v4);
  const v6 = parseIpv6(host);
  if (v6) return classifyIpv6(v6);
  if (
    host === "localhost" ||
    host.endsWith(".localhost") ||
    host === "ip6-localhost" ||
    host === "ip6-loopback"
  ) {
    return "loopback";
  }
  return "public";
};

/**
 * The one rule every source URL is held to, never an unspecified address: parse-source applies it
 * (through urlAllowed) before anything is evicted, and the download to the URL it fetches (an `hf:`
 * URL is built on `hf_endpoint`, operator config that may be a plain-http mirror and that
 * parse-source does not check).
 */
export const sourceAllowed = (url: URL): Verdict =>
  classifyHost(url.hostname) === "unspecified"
    ? refuse(`${url.hostname} is not an address one can connect to`)
    : ALLOWED;

/**
 * The rules of a source, for a URL the neuron did not choose (a redirect target): http or
 * https, no credentials, never an unspecified address, plain http only to loopback.
 */
export const urlAllowed = (url: URL): Verdict => {
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return refuse(`${url.protocol} is not http(s)`);
  }
  if (url.username !== "" || url.password !== "") return refuse("the URL carries credentials");
  const unspecified = sourceAllowed(url);
  if (!unspecified.allowed) return unspecified;
  if (url.protocol === "http:" && classifyHost(url.hostname) !== "loopback") {
    return refuse("plain http is allowed only to loopback hosts");
  }
  return ALLOWED;
};

/**
 * Whether a download at `from` may follow a redirect to `to`: `to` meets the rules of a source,
 * an https hop never leads to plain http, and no hop leads to a more internal host than the one
 * it came from (public → private or loopback, private → loopback). Checked hop by hop, so a chain
 * is never more internal than its source. A hop within the same origin (scheme, host and port)
 * reaches nothing new and is followed even over plain http: an operator's http mirror in
 * `hf_endpoint` may redirect within itself.
 */
export const redirectAllowed = (from: URL, to: URL): Verdict => {
  if (to.origin === from.origin && (to.protocol === "https:" || to.protocol === "http:")) {
    return to.username === "" && to.password === ""
      ? ALLOWED
      : refuse("the URL carries credentials");
  }
  const basic = urlAllowed(to);
  if (!basic.allowed) return basic;
  if (from.protocol === "https:" && to.protocol === "http:") {
    return refuse("it downgrades https to plain http");
  }
  const source = classifyHost(from.hostname);
  const target = classifyHost(to.hostname);
  if (source !== "unspecified" && target !== "unspecified" && RANK[target] > RANK[source]) {
    return refuse(`it leads from a ${source} host to a ${target} address`);
  }
  return ALLOWED;
};
