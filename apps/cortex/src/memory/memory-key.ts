import { createHash } from "node:crypto";
import type { CatalogueEntry } from "@cortex/protocol";

/** The parts of an entry that decide its GPU footprint, besides its id and harness. */
export type KeyedEntry = Pick<
  CatalogueEntry,
  | "id"
  | "harness"
  | "source"
  | "quant"
  | "context_length"
  | "max_concurrency"
  | "args"
  | "min_devices"
  | "runs_on"
>;

/** JSON with object keys sorted, so `{a, b}` and `{b, a}` hash alike. */
const canonical = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical(record[key])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value ?? null);
};

const cache = new WeakMap<object, string>();

/**
 * What cortex files a model's memory figures under: `<id> <harness> <hash>`, the hash over the
 * source, quant, context length, slots (max_concurrency), args, devices and where it runs. An
 * entry edited in any of these is a new key (its old estimate and measurements no longer say
 * anything about it); one edited elsewhere (aliases, priority, filters) keeps its key.
 * Memoised per (immutable) entry object.
 */
export const memoryKey = (entry: KeyedEntry): string => {
  const cached = cache.get(entry);
  if (cached !== undefined) return cached;
  const hash = createHash("sha256")
    .update(
      canonical({
        source: entry.source,
        quant: entry.quant ?? null,
        context_length: entry.context_length ?? null,
        max_concurrency: entry.max_concurrency,
        args: entry.args,
        min_devices: entry.min_devices,
        runs_on: entry.runs_on,
      }),
    )
    .digest("hex")
    .slice(0, 16);
  const key = `${entry.id} ${entry.harness} ${hash}`;
  cache.set(entry, key);
  return key;
};
