/** Values a command template may use, each written `{name}` anywhere inside an argument. */
export const PLACEHOLDERS = [
  "model_path",
  "model_id",
  "port",
  "host",
  "ctx_size",
  "parallel",
  "devices",
  "tensor_parallel",
] as const;

export type Placeholder = (typeof PLACEHOLDERS)[number];

const PATTERN = /\{\{|\}\}|\{([^{}]*)\}/g;

/** Names used in a template that are not placeholders; checked once, when the config loads. */
export const unknownPlaceholders = (template: readonly string[]): string[] => {
  const unknown = new Set<string>();
  for (const part of template) {
    for (const match of part.matchAll(PATTERN)) {
      const name = match[1];
      if (name !== undefined && !(PLACEHOLDERS as readonly string[]).includes(name))
        unknown.add(name);
    }
  }
  return [...unknown];
};

/**
 * Fills placeholders inside each argument. Each argument stays one argv element whatever the
 * values contain: the result goes to execve, never to a shell. `{{` and `}}` are literal braces.
 */
export const substitute = (
  template: readonly string[],
  values: Readonly<Record<Placeholder, string>>,
): string[] =>
  template.map((part) =>
    part.replace(PATTERN, (whole, name: string | undefined) => {
      if (whole === "{{") return "{";
      if (whole === "}}") return "}";
      // Own properties only: `{constructor}` must never find Object.prototype's.
      const value =
        name !== undefined && Object.hasOwn(values, name) ? values[name as Placeholder] : undefined;
      if (value === undefined) throw new Error(`unknown placeholder {${name}}`);
      return value;
    }),
  );
