import type { HarnessArgs } from "@cortex/protocol";

// Catalogue `args` become command-line flags only through a table of options the harness
// declares; anything else is refused. Values are checked by type and passed as separate argv
// elements, so nothing in a catalogue or a request can become a shell string.
//
// The table is a Map, never a plain object: a name from a request (`constructor`, `__proto__`,
// `toString`) must not find what Object.prototype carries and pass as a declared option.

/** `any`: a scalar or a list, for template harnesses whose flags the neuron cannot know. */
export type OptionType = "int" | "number" | "string" | "bool" | "list" | "any";

export interface OptionSpec {
  readonly flag: string;
  readonly type: OptionType;
}

export type OptionTable = ReadonlyMap<string, OptionSpec>;

/** An option table from a literal; only the record's own entries count. */
export const optionTable = (entries: Readonly<Record<string, OptionSpec>>): OptionTable =>
  new Map(Object.entries(entries));

/** What an argument string may hold: anything but NUL and line breaks, at most 4096 characters. */
const SAFE_STRING = /^[^\0\n\r]{0,4096}$/;

/** The spec of a declared option, or undefined for any other name (inherited ones included). */
const optionOf = (table: OptionTable, name: string): OptionSpec | undefined => table.get(name);

/** The value `args` gives `name` itself, never one inherited from Object.prototype. */
export const ownArg = (args: HarnessArgs, name: string): HarnessArgs[string] | undefined =>
  Object.hasOwn(args, name) ? args[name] : undefined;

/** Every problem with the args, one line each; empty when they are all acceptable. */
export const argProblems = (harness: string, table: OptionTable, args: HarnessArgs): string[] => {
  const problems: string[] = [];
  for (const [name, value] of Object.entries(args)) {
    const spec = optionOf(table, name);
    if (!spec) {
      const known = [...table.keys()];
      problems.push(
        `harness "${harness}" has no option "${name}"${known.length ? ` (it accepts: ${known.join(", ")})` : " (it accepts none)"}`,
      );
      continue;
    }
    const ok =
      spec.type === "int"
        ? typeof value === "number" && Number.isInteger(value)
        : spec.type === "number"
          ? typeof value === "number" && Number.isFinite(value)
          : spec.type === "bool"
            ? typeof value === "boolean"
            : spec.type === "string"
              ? typeof value === "string" && SAFE_STRING.test(value)
              : spec.type === "list"
                ? Array.isArray(value) && value.every((item) => SAFE_STRING.test(String(item)))
                : Array.isArray(value)
                  ? value.every((item) => SAFE_STRING.test(String(item)))
                  : typeof value !== "string" || SAFE_STRING.test(value);
    if (!ok)
      problems.push(
        `option "${name}" of harness "${harness}" must be ${spec.type === "int" ? "an integer" : `a ${spec.type}`}`,
      );
  }
  return problems;
};

/** The argv for validated args: `--flag value`, a bare flag for `true`, nothing for `false`. */
export const argvOf = (table: OptionTable, args: HarnessArgs): string[] =>
  Object.entries(args).flatMap(([name, value]) => {
    const spec = optionOf(table, name);
    if (!spec) return [];
    if (typeof value === "boolean") return value ? [spec.flag] : [];
    if (Array.isArray(value)) return [spec.flag, value.join(",")];
    return [spec.flag, String(value)];
  });
