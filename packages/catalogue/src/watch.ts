import { watch } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import {
  type CatalogueEntries,
  type CatalogueProblem,
  type CatalogueSnapshot,
  formatProblems,
  loadCatalogueSnapshot,
} from "./load.js";

/** An invalid catalogue at start-up; the message lists every problem, one per line. */
export class CatalogueError extends Error {
  readonly problems: readonly CatalogueProblem[];

  constructor(problems: readonly CatalogueProblem[]) {
    super(`invalid catalogue:\n${formatProblems(problems)}`);
    this.name = "CatalogueError";
    this.problems = problems;
  }
}

export interface WatchCatalogueOptions {
  /** A changed, valid catalogue is now current. */
  readonly onReload: (catalogue: CatalogueEntries, files: string[]) => void;
  /** A changed catalogue is invalid (or watching failed); the last good one stays current. */
  readonly onError: (problems: CatalogueProblem[]) => void;
  /** Quiet time after the last file event before reloading; editors write in bursts. */
  readonly debounceMs?: number;
  /** How to read the catalogue; tests wrap the real loader to hold a reload open. */
  readonly load?: (path: string) => Promise<CatalogueSnapshot>;
}

export interface CatalogueWatcher {
  /** The last valid catalogue's entries, as written; never an invalid one. */
  current(): CatalogueEntries;
  /** Stops watching, cancels a pending reload and waits for a running one; no callbacks after. */
  close(): Promise<void>;
}

const messageOf = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);

/**
 * Loads the catalogue, then keeps it current as its files change. Throws `CatalogueError`
 * when the first load is invalid, so start-up fails loudly instead of serving nothing.
 *
 * The directory is watched rather than the file, because editors and config management
 * replace files by writing a temporary and renaming it over the original, which ends a
 * watch on the file itself.
 */
export const watchCatalogue = async (
  path: string,
  options: WatchCatalogueOptions,
): Promise<CatalogueWatcher> => {
  const { onReload, onError, debounceMs = 100, load = loadCatalogueSnapshot } = options;

  const first = await load(path);
  if (!first.result.ok) throw new CatalogueError(first.result.problems);
  let current = first.result.catalogue;
  // The digest of the last load attempt, good or bad: events that change nothing (a swap
  // file, a touch, the same broken save twice) then produce no callback and no log line.
  let lastDigest = first.digest;

  const isDirectory = (await stat(path)).isDirectory();
  const watchedDir = isDirectory ? path : dirname(path);
  const fileName = isDirectory ? undefined : basename(path);

  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  // A throwing callback must not become an unhandled rejection that kills the server, nor
  // stop later reloads; callers own their logging, so there is nowhere better to send it.
  const notify = (callback: () => void): void => {
    try {
      callback();
    } catch {}
  };

  const reloadOnce = async (): Promise<void> => {
    let snapshot: CatalogueSnapshot;
    try {
      snapshot = await load(path);
    } catch (error) {
      // The loader reports I/O failures as problems; this is the unexpected rest.
      const message = `reload failed: ${messageOf(error)}`;
      snapshot = {
        result: { ok: false, problems: [{ file: path, path: "", message }] },
        digest: `error:${message}`,
      };
    }
    if (closed || snapshot.digest === lastDigest) return;
    lastDigest = snapshot.digest;
    const { result } = snapshot;
    if (result.ok) {
      current = result.catalogue;
      notify(() => onReload(result.catalogue, result.files));
    } else {
      notify(() => onError(result.problems));
    }
  };

  // One reload at a time; a change that lands during a reload is picked up by one more pass
  // afterwards, so the catalogue never ends older than the files.
  const drain = async (): Promise<void> => {
    try {
      do {
        again = false;
        await reloadOnce();
      } while (again && !closed);
    } finally {
      running = undefined;
    }
  };

  const reload = (): void => {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = drain();
  };

  const schedule = (): void => {
    if (closed) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      reload();
    }, debounceMs);
  };

  const watcher = watch(watchedDir, (_event, name) => {
    // Some platforms give no name; reloading then is cheap and the digest hides no-ops.
    // Kubernetes ConfigMaps update a mounted file by swapping the `..data` link beside it.
    if (fileName !== undefined && name && name !== fileName && !name.startsWith("..data")) return;
    schedule();
  });
  watcher.on("error", (error) => {
    if (closed) return;
    notify(() =>
      onError([{ file: path, path: "", message: `watching stopped: ${messageOf(error)}` }]),
    );
  });

  // Catches an edit made between the first load and the watch starting; without a change
  // the digest matches and nothing is reported.
  schedule();

  return {
    current: () => current,
    close: async () => {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      watcher.close();
      await running;
    },
  };
};
