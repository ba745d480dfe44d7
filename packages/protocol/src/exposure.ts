import { parseListen } from "./common.js";
import type { CortexConfig, NeuronConfig } from "./config.js";
import type { Problem } from "./issues.js";

// Whether a server may start on its `listen` address with the authentication it has. Pure: the
// apps call it on their validated config before listening and turn a refusal into a ConfigError.

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The four octets of a dotted-quad IPv4 address, or undefined. */
const ipv4Octets = (text: string): number[] | undefined => {
  const match = IPV4.exec(text);
  if (!match) return undefined;
  const octets = match.slice(1).map(Number);
  return octets.every((octet) => octet <= 255) ? octets : undefined;
};

/** The eight 16-bit groups of an IPv6 address (`::` and an IPv4 tail expanded), or undefined. */
const ipv6Groups = (text: string): number[] | undefined => {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === "") return [];
    const groups: number[] = [];
    const pieces = part.split(":");
    for (const [index, piece] of pieces.entries()) {
      const octets = index === pieces.length - 1 ? ipv4Octets(piece) : undefined;
      if (octets) {
        groups.push(
          ((octets[0] ?? 0) << 8) | (octets[1] ?? 0),
          ((octets[2] ?? 0) << 8) | (octets[3] ?? 0),
        );
        continue;
      }
      if (!/^[0-9A-Fa-f]{1,4}$/.test(piece)) return undefined;
      groups.push(Number.parseInt(piece, 16));
    }
    return groups;
  };
  const head = parse(halves[0] ?? "");
  const tail = halves.length === 2 ? parse(halves[1] ?? "") : [];
  if (!head || !tail) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  const zeros = 8 - head.length - tail.length;
  return zeros >= 1 ? [...head, ...new Array<number>(zeros).fill(0), ...tail] : undefined;
};

/**
 * Whether `host` (a `listen` host, brackets removed) reaches this machine only: `localhost`,
 * 127.0.0.0/8, `::1` (in any spelling) and IPv4-mapped 127.x. Everything else is not loopback:
 * `0.0.0.0`, `::` and the empty host (every interface), other addresses and other names.
 */
export const isLoopbackHost = (host: string): boolean => {
  const name = host.toLowerCase();
  if (name === "localhost") return true;
  const v4 = ipv4Octets(name);
  if (v4) return v4[0] === 127;
  const v6 = ipv6Groups(name);
  if (!v6) return false;
  if (v6.slice(0, 7).every((group) => group === 0)) return v6[7] === 1;
  // ::ffff:127.x.y.z, an IPv4-mapped loopback address.
  return (
    v6.slice(0, 5).every((group) => group === 0) && v6[5] === 0xffff && (v6[6] ?? 0) >> 8 === 127
  );
};

/** An authentication setting left empty, and what that leaves open to whoever can connect. */
export interface OpenSurface {
  /** The config key that would close it, e.g. `admin_token`. */
  readonly key: string;
  /** What anyone who reaches the server can do, e.g. `the admin API (/api/*): load, unload, …`. */
  readonly opens: string;
}

export type ExposureVerdict =
  /** Loopback, or every surface authenticated: start quietly. */
  | { readonly kind: "ok" }
  /** Not loopback and something is open: refuse to start, naming the settings. */
  | { readonly kind: "refuse"; readonly problems: readonly Problem[] }
  /** Not loopback, something open, and `allow_unauthenticated: true`: start, but warn. */
  | { readonly kind: "warn"; readonly open: readonly OpenSurface[]; readonly message: string };

export interface ExposureInput {
  /** "cortex" or "neuron", for messages. */
  readonly what: string;
  /** The validated `listen` value. */
  readonly listen: string;
  readonly allowUnauthenticated: boolean;
  /** The surfaces without authentication (empty: everything is authenticated). */
  readonly open: readonly OpenSurface[];
}

/**
 * A server on a non-loopback address with an unauthenticated surface starts only when the
 * operator said so (`allow_unauthenticated: true`), and then says what is open.
 */
export const checkExposure = (input: ExposureInput): ExposureVerdict => {
  const { host } = parseListen(input.listen);
  if (input.open.length === 0 || isLoopbackHost(host)) return { kind: "ok" };
  const where = `${input.what} listens on ${input.listen}, which is not a loopback address`;
  if (!input.allowUnauthenticated) {
    return {
      kind: "refuse",
      problems: input.open.map((surface) => ({
        path: surface.key,
        message: `is empty while ${where}: ${surface.opens} would be open to anyone who can reach it. Set ${surface.key}, listen on 127.0.0.1, or set allow_unauthenticated: true to run it open on purpose`,
      })),
    };
  }
  return {
    kind: "warn",
    open: input.open,
    message: `${where} and allow_unauthenticated is true: ${input.open
      .map((surface) => `no ${surface.key}, so ${surface.opens} is open to anyone who can reach it`)
      .join("; ")}`,
  };
};

/** Cortex's surfaces without authentication: the admin API without `admin_token`, inference without `api_keys`. */
export const cortexOpenSurfaces = (
  config: Pick<CortexConfig, "admin_token" | "api_keys">,
): OpenSurface[] => [
  ...(config.admin_token === ""
    ? [
        {
          key: "admin_token",
          opens: "the admin API (/api/*: loading and unloading models, the fleet, the traffic log)",
        },
      ]
    : []),
  // The schema refuses an empty key, so no keys at all is the only way to have none.
  ...(config.api_keys.length === 0
    ? [{ key: "api_keys", opens: "inference (/v1/*) on every model of the fleet" }]
    : []),
];

/** The neuron without `token`: every route but /health is open. */
export const neuronOpenSurfaces = (config: Pick<NeuronConfig, "token">): OpenSurface[] =>
  config.token === ""
    ? [
        {
          key: "token",
          opens:
            "the whole neuron API (loading and unloading models, inference, harness logs, host facts)",
        },
      ]
    : [];

export const cortexExposure = (
  config: Pick<CortexConfig, "listen" | "allow_unauthenticated" | "admin_token" | "api_keys">,
): ExposureVerdict =>
  checkExposure({
    what: "cortex",
    listen: config.listen,
    allowUnauthenticated: config.allow_unauthenticated,
    open: cortexOpenSurfaces(config),
  });

export const neuronExposure = (
  config: Pick<NeuronConfig, "listen" | "allow_unauthenticated" | "token">,
): ExposureVerdict =>
  checkExposure({
    what: "neuron",
    listen: config.listen,
    allowUnauthenticated: config.allow_unauthenticated,
    open: neuronOpenSurfaces(config),
  });
