import { z } from "zod";

// Pieces the Responses and Anthropic Messages request schemas share. Both APIs take text as a
// string or as a list of typed parts; only text parts can reach this harness's models, and a
// part or item of another type is refused by name rather than dropped.

/** llama.cpp's own default temperature, which the chat route also uses when a client sends none. */
export const DEFAULT_TEMPERATURE = 0.8;

/** A client's value quoted in an error message, cut short: messages may quote what clients send. */
export const quoted = (value: unknown): string => JSON.stringify(String(value).slice(0, 64));

/**
 * A string, or what `list` accepts. One schema instead of `z.union`, whose error for a list with
 * one bad part is a bare "Invalid input": here the list's own issues (with their paths) come back.
 */
export const stringOrList = <T extends z.ZodType>(list: T, what: string) =>
  z.unknown().transform((value, ctx): string | z.output<T> => {
    if (typeof value === "string") return value;
    if (!Array.isArray(value)) {
      ctx.addIssue({ code: "custom", message: `${what} must be a string or a list` });
      return z.NEVER;
    }
    const result = list.safeParse(value);
    if (result.success) return result.data;
    for (const issue of result.error.issues)
      ctx.addIssue({ code: "custom", path: issue.path, message: issue.message });
    return z.NEVER;
  });

/**
 * A `{type, text}` part whose type is one of `types`; any other type is refused naming it (an
 * image, a file, a tool call), as the chat route refuses non-text parts.
 */
export const textPart = <const T extends readonly [string, ...string[]]>(types: T, what: string) =>
  z
    .looseObject({ type: z.unknown() })
    .superRefine((part, ctx) => {
      if (typeof part.type !== "string") {
        ctx.addIssue({ code: "custom", path: ["type"], message: `${what} need a "type"` });
      } else if (!types.includes(part.type)) {
        ctx.addIssue({
          code: "custom",
          path: ["type"],
          message: `${what} of type ${quoted(part.type)} are not supported: this harness reads text only (${types.join(", ")})`,
        });
      }
    })
    .pipe(z.object({ type: z.enum(types), text: z.string({ error: "a text part needs text" }) }));

/** A field the harness refuses when set, with a message saying why and what to send instead. */
export const refusedWhen = <T extends z.ZodType>(
  schema: T,
  set: (value: z.output<T>) => boolean,
  message: string,
) => schema.refine((value) => !set(value), { error: message });
