import { watch } from "node:fs";
import { basename, dirname } from "node:path";
import type { CortexConfig, NeuronTarget } from "@cortex/protocol";

/** What a reload of cortex.yaml changed in its `neurons:` list, by name. */
export interface NeuronsDiff {
  readonly added: NeuronTarget[];
  readonly changed: NeuronTarget[];
  readonly removed: string[];
}

/** Added, changed (URL, token or priority) and removed static neurons between two configs. */
export const neuronsDiff = (
  before: readonly NeuronTarget[],
  after: readonly NeuronTarget[],
): NeuronsDiff => {
  const old = new Map(before.map((target) => [target.name, target]));
  const names = new Set(after.map((target) => target.name));
  const added: NeuronTarget[] = [];
  const changed: NeuronTarget[] = [];
  for (const target of after) {
    const was = old.get(target.name);
    if (was === undefined) added.push(target);
    else if (
      was.url !== target.url ||
      was.token !== target.token ||
      was.priority !== target.priority
    )
      changed.push(target);
  }
  const removed = before.filter((target) => !names.has(target.name)).map((target) => target.name);
  return { added, changed, removed };
};

/**
 * The keys other than `neurons` whose value changed: only `neurons:` reloads, so these are
 * logged as needing a restart. Compared as JSON (the configs are plain parsed data).
 */
export const restartKeys = (before: CortexConfig, after: CortexConfig): string[] =>
  Object.keys({ ...before, ...after }).filter(
    (key) =>
      key !== "neurons" &&
      JSON.stringify((before as Record<string, unknown>)[key]) !==
        JSON.stringify((after as Record<string, unknown>)[key]),
  );

/** A watch on one file; `close` ends it. */
export interface FileWatch {
  close(): void;
}

/**
 * Calls `changed` once a burst of changes to `file` has been quiet for `debounceMs`. The
 * directory is watched, not the file, so an editor's replace-by-rename (and a Kubernetes
 * ConfigMap's `..data` link swap) is seen too. A watch that fails reports through `failed`.
 */
export const watchFile = (
  file: string,
  changed: () => void,
  failed: (error: unknown) => void,
  debounceMs = 200,
): FileWatch => {
  const name = basename(file);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const watcher = watch(dirname(file), (_event, changedName) => {
    if (changedName && changedName !== name && !changedName.startsWith("..data")) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      if (!closed) changed();
    }, debounceMs);
  });
  watcher.on("error", (error) => {
    if (!closed) failed(error);
  });
  return {
    close: () => {
      closed = true;
      if (timer) clearTimeout(timer);
      watcher.close();
    },
  };
};
