import { z } from "zod";

/**
 * Model ids travel in URL paths (`/models/{id}/logs`) and name files on disk, so they are
 * restricted to a safe alphabet: no slashes, no leading dot, nothing that could traverse.
 */
export const ModelId = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/,
    "must be 1-128 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
  );

/** Aliases are only looked up, never used as paths, so they may look like upstream names ("org/model"). */
export const ModelAlias = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\s\p{Cc}]+$/u, "must not contain whitespace or control characters");

/** Node names appear in `pinned_on`, metrics labels and URLs. */
export const NodeName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/,
    "must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
  );

export const HarnessName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "must be lowercase letters, digits, '.', '_' or '-'");

export const IsoTime = z.iso.datetime({ offset: true });

export const NonNegativeInt = z.int().nonnegative();
export const PositiveInt = z.int().positive();

/**
 * The longest delay a Node.js timer holds (2^31 - 1 ms, about 24.8 days): a longer one fires
 * after 1 ms instead, so every duration that ends up in a timer is bounded by it.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/** Milliseconds that become a timer: 1 ms up to MAX_TIMER_MS. */
export const TimerMs = PositiveInt.max(
  MAX_TIMER_MS,
  "must be at most 2147483647 ms (about 24.8 days): a longer timer fires at once",
);
/** Like TimerMs, where 0 means "none" or "at once". */
export const TimerMsOrZero = NonNegativeInt.max(
  MAX_TIMER_MS,
  "must be at most 2147483647 ms (about 24.8 days): a longer timer fires at once",
);
/** Seconds that become a timer: 0 up to MAX_TIMER_MS / 1000 (2,147,483 s, about 24.8 days). */
export const TimerSeconds = NonNegativeInt.max(
  Math.floor(MAX_TIMER_MS / 1000),
  "must be at most 2147483 s (about 24.8 days): a longer timer fires at once",
);

/** `host:port`, `[v6]:port` or `:port`; the port may be 0 to let the OS pick (tests). */
export const ListenAddress = z
  .string()
  .regex(
    /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/,
    "must look like host:port, [::1]:port or :port",
  )
  .refine((value) => Number(value.slice(value.lastIndexOf(":") + 1)) <= 65_535, {
    message: "port must be between 0 and 65535",
  });

export interface ParsedListen {
  readonly host: string;
  readonly port: number;
}

/** Splits a validated ListenAddress; an empty host means every interface. */
export const parseListen = (value: string): ParsedListen => {
  const colon = value.lastIndexOf(":");
  let host = value.slice(0, colon);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return { host: host === "" ? "0.0.0.0" : host, port: Number(value.slice(colon + 1)) };
};

export const HttpUrl = z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" });

/**
 * A record whose keys come from a request or a file: like `z.record`, but a `__proto__` key
 * (which JSON.parse makes an own property, and `z.record` would silently drop) is an error
 * rather than a key that vanishes.
 */
export const ownRecord = <K extends z.core.$ZodRecordKey, V extends z.ZodType>(key: K, value: V) =>
  z.preprocess(
    (input, ctx) => {
      if (typeof input === "object" && input !== null && Object.hasOwn(input, "__proto__"))
        ctx.addIssue({
          code: "custom",
          message: '"__proto__" is not an accepted name',
          path: ["__proto__"],
          input,
        });
      return input;
    },
    z.record(key, value),
  );
