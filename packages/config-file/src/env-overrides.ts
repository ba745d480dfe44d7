import type { Problem } from "@cortex/protocol";
import type { z } from "zod";

/**
 * Config keys from the environment: `<PREFIX>_<KEY>` for every top-level key of the schema
 * (`NEURON_LISTEN`, `CORTEX_POLL_INTERVAL_MS`, …). A value the key accepts as a string is taken
 * as it is (a token of digits stays a string); otherwise it is read as JSON (numbers, lists,
 * objects). The environment wins over the file.
 * A variable with the prefix that names no key is a problem, not a silent no-op.
 */
export const envOverrides = (
  schema: z.ZodObject,
  env: Readonly<Record<string, string | undefined>>,
  prefix: string,
  alsoAllowed: readonly string[] = [],
): { values: Record<string, unknown>; problems: Problem[] } => {
  const keys = Object.keys(schema.shape);
  const values: Record<string, unknown> = {};
  const problems: Problem[] = [];
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(`${prefix}_`) || raw === undefined || alsoAllowed.includes(name)) continue;
    const key = name.slice(prefix.length + 1).toLowerCase();
    if (!keys.includes(key)) {
      problems.push({
        path: name,
        message: `unknown environment variable; config keys are ${keys.map((k) => `${prefix}_${k.toUpperCase()}`).join(", ")}`,
      });
      continue;
    }
    const field = schema.shape[key] as z.ZodType;
    values[key] = field.safeParse(raw).success ? raw : parseJson(raw);
  }
  return { values, problems };
};

const parseJson = (raw: string): unknown => {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
};
