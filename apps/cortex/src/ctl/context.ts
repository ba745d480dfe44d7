import type { CortexClient } from "./client.js";

/** What every command gets from the shell: the client, the output mode and its streams. */
export interface CtlContext {
  readonly client: CortexClient;
  /** `--json`: machine-readable output on stdout, nothing else there. */
  readonly json: boolean;
  /** A line (or block) of text on stdout. */
  print(text: string): void;
  /** Progress and notes go to stderr, so stdout stays the result alone. */
  readonly stderr: NodeJS.WriteStream;
  readonly now: () => number;
}

export const printJson = (context: CtlContext, value: unknown): void =>
  context.print(JSON.stringify(value, null, 2));
