import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type Problem, problemsOf } from "@cortex/protocol";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { envOverrides } from "./env-overrides.js";

/** Every problem with a configuration, listed so the operator can fix them all at once. */
export class ConfigError extends Error {
  readonly problems: readonly Problem[];

  constructor(what: string, source: string, problems: readonly Problem[]) {
    super(
      `invalid ${what} configuration (${source}):\n${problems.map((p) => `  ${p.path || "(top level)"}: ${p.message}`).join("\n")}`,
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export interface ConfigFileOptions {
  /** "neuron" or "cortex": names the configuration in messages. */
  readonly what: string;
  /** The YAML file, or undefined when every key comes from the environment. */
  readonly file: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Variables `<PREFIX>_<KEY>` override keys of the file. */
  readonly prefix: string;
  /** Variables with the prefix that are not config keys (the CLI's own). */
  readonly notKeys: readonly string[];
}

/**
 * Reads a YAML config file (optional), applies `<PREFIX>_*` environment variables over it (the
 * environment wins), and validates the result with `schema`. Throws one ConfigError listing
 * every problem: unreadable file, YAML errors, bad variables and schema violations together.
 */
export const loadConfigFile = <S extends z.ZodObject>(
  schema: S,
  options: ConfigFileOptions,
): z.output<S> => {
  const { file, what } = options;
  const problems: Problem[] = [];
  let fromFile: Record<string, unknown> = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      throw new ConfigError(what, file, [
        { path: "", message: `cannot read: ${(error as Error).message}` },
      ]);
    }
    const doc = parseDocument(text);
    for (const error of doc.errors) problems.push({ path: "", message: `YAML: ${error.message}` });
    const parsed: unknown = doc.toJS();
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== "object" || Array.isArray(parsed))
        problems.push({ path: "", message: "must be a mapping of keys" });
      else fromFile = parsed as Record<string, unknown>;
    }
  }
  const fromEnv = envOverrides(schema, options.env, options.prefix, options.notKeys);
  problems.push(...fromEnv.problems);
  const result = schema.safeParse({ ...fromFile, ...fromEnv.values });
  if (!result.success) problems.push(...problemsOf(result.error));
  if (problems.length > 0 || !result.success)
    throw new ConfigError(what, file ?? "environment", problems);
  return result.data;
};

/**
 * The `serve` command both apps' CLIs are: `<app> serve [--config file]`, the file also from
 * `configVar` in the environment. A ConfigError exits 2 with its list of problems, any other
 * failure to start exits 1.
 */
export const runServeCommand = (options: {
  readonly usage: string;
  readonly configVar: string;
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly main: (args: {
    configFile: string | undefined;
    env: Readonly<Record<string, string | undefined>>;
  }) => Promise<void>;
}): void => {
  const fail: (text: string, code: number) => never = (text, code) => {
    process.stderr.write(`${text}\n`);
    process.exit(code);
  };
  let parsed: { positionals: string[]; values: { config?: string; help?: boolean } };
  try {
    parsed = parseArgs({
      args: [...options.argv],
      allowPositionals: true,
      options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } },
    });
  } catch (error) {
    fail(`${(error as Error).message}\n${options.usage}`, 2);
  }
  const { positionals, values } = parsed;
  if (values.help) fail(options.usage, 0);
  if (positionals[0] !== "serve") fail(options.usage, 2);
  options
    .main({ configFile: values.config ?? options.env[options.configVar], env: options.env })
    .catch((error: unknown) => {
      if (error instanceof ConfigError) fail(error.message, 2);
      fail(error instanceof Error ? (error.stack ?? error.message) : String(error), 1);
    });
};
