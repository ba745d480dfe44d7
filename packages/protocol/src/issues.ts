import type { z } from "zod";

/** A validation problem in a form people can act on: where, and what to fix. */
export interface Problem {
  /** Dotted path inside the document, e.g. `models[2].vram_mb`; empty for the whole document. */
  readonly path: string;
  readonly message: string;
}

export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>((out, key) => {
    if (typeof key === "number") return `${out}[${key}]`;
    const name = String(key);
    return out === "" ? name : `${out}.${name}`;
  }, "");

/** Every issue of a failed parse, not only the first; unknown keys are named one by one. */
export const problemsOf = (error: z.ZodError): Problem[] =>
  error.issues.flatMap((issue) => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({
        path: formatPath([...issue.path, key]),
        message: `unknown key "${key}"`,
      }));
    }
    return [{ path: formatPath(issue.path), message: issue.message }];
  });
