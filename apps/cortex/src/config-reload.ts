import { resolve } from "node:path";
import type { CortexConfig, FleetEvent } from "@cortex/protocol";
import { loadConfig } from "./config.js";
import { type NeuronsDiff, neuronsDiff, restartKeys, watchFile } from "./config-watch.js";
import type { MemberTarget } from "./fleet/membership.js";
import type { Log } from "./log.js";

/** Where the running config came from, so it can be read again (SIGHUP, a change of the file). */
export interface ConfigSource {
  readonly file: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Watch the file and reload on change (default true when there is a file). */
  readonly watch?: boolean;
  readonly debounceMs?: number;
}

export interface ConfigReloadOptions {
  readonly initial: CortexConfig;
  readonly source: ConfigSource | undefined;
  readonly members: {
    origin(name: string): "static" | "joined" | undefined;
    set(target: MemberTarget, origin: "static"): void;
    remove(name: string): boolean;
  };
  /** A static entry took a joined node's name: its stored join goes. */
  readonly superseded: (name: string) => void;
  readonly emit: (event: FleetEvent) => void;
  readonly log: Log;
}

/** Applying and re-reading cortex.yaml at run time; `close` ends the file watch. */
export interface ConfigReload {
  readonly apply: (next: CortexConfig) => NeuronsDiff;
  readonly reload: () => boolean;
  readonly close: () => void;
}

/**
 * cortex.yaml's `neurons:` list, live: `apply` moves the fleet's static nodes to a new config's
 * (added ones join and are polled at once, removed ones leave, changed URLs, tokens and
 * priorities apply; static wins over a joined node of the same name), and names every other
 * changed key in a warning, since only `neurons:` reloads. `reload` reads the file again (a bad
 * one is logged and the last good config kept); the file is watched unless told otherwise.
 */
export const configReload = (options: ConfigReloadOptions): ConfigReload => {
  const { members, log, source } = options;
  let running = options.initial;
  const apply = (next: CortexConfig): NeuronsDiff => {
    const diff = neuronsDiff(running.neurons, next.neurons);
    for (const name of diff.removed) {
      if (members.origin(name) !== "static") continue;
      members.remove(name);
      options.emit({ type: "node_removed", at: new Date().toISOString(), node: name });
    }
    for (const target of [...diff.added, ...diff.changed]) {
      if (members.origin(target.name) === "joined") options.superseded(target.name);
      members.set(target, "static");
    }
    const restart = restartKeys(running, next);
    running = { ...running, neurons: next.neurons };
    log.info(
      {
        added: diff.added.map((target) => target.name),
        changed: diff.changed.map((target) => target.name),
        removed: diff.removed,
      },
      "cortex.yaml reloaded: neurons applied",
    );
    if (restart.length > 0)
      log.warn({ keys: restart }, "cortex.yaml changed settings that apply only after a restart");
    return diff;
  };
  const reload = (): boolean => {
    if (source?.file === undefined) return false;
    let next: CortexConfig;
    try {
      next = loadConfig(source.file, source.env);
    } catch (error) {
      log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        "cortex.yaml is invalid; keeping the last good config",
      );
      return false;
    }
    apply(next);
    return true;
  };
  const watch =
    source?.file !== undefined && source.watch !== false
      ? watchFile(
          resolve(source.file),
          () => void reload(),
          (error) => log.warn({ err: error }, "watching cortex.yaml stopped"),
          source.debounceMs,
        )
      : undefined;
  return { apply, reload, close: () => watch?.close() };
};
