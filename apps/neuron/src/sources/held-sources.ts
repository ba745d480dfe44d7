import type { Dirent } from "node:fs";
import { opendir, realpath, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type HeldFile, type HeldSources, MAX_HELD_FILES } from "@cortex/protocol";
import { systemTimers, type TimerHandle, type Timers } from "../timers.js";
import { isInside } from "./parse-source.js";

// Which model files this node already holds, for cortex's placement (discovery's `sources`):
// a bounded walk of models_dir, kept in memory and never run on a request's path.

/** How far one scan goes; past any bound the answer says it is incomplete. */
export interface ScanLimits {
  /** Files listed at most (the discovery answer's bound). */
  readonly maxFiles: number;
  /** Folder levels below models_dir; `hf/owner/repo/rev/file` is 5. */
  readonly maxDepth: number;
  /** Directory entries looked at, listed or not: a huge tree costs a bounded walk. */
  readonly maxEntries: number;
  /** Wall time of one scan. */
  readonly budgetMs: number;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = {
  maxFiles: MAX_HELD_FILES,
  maxDepth: 8,
  maxEntries: 50_000,
  budgetMs: 2_000,
};

/** A download in progress (download.ts): never a file a harness could load. */
const PARTIAL = ".partial";

const code = (error: unknown): string | undefined => (error as NodeJS.ErrnoException).code;

/**
 * Lists the complete files under `modelsDir` by path relative to it, `/`-separated and sorted.
 * Not listed: `.partial` downloads, symlinks leading out of models_dir (a load refuses them),
 * sockets and the like. A symlinked folder is not followed (it could loop) and, like a folder
 * that cannot be read or a bound reached, makes the answer incomplete: cortex then does not
 * conclude that a file is missing from its absence.
 */
export const scanHeldSources = async (
  modelsDir: string,
  limits: ScanLimits = DEFAULT_SCAN_LIMITS,
  now: () => number = Date.now,
): Promise<HeldSources> => {
  const models_dir = resolve(modelsDir);
  const files: HeldFile[] = [];
  let complete = true;
  let root: string;
  try {
    root = await realpath(models_dir);
  } catch (error) {
    // No models_dir yet: the node holds nothing, and knows it.
    if (code(error) === "ENOENT") return { models_dir, files, complete };
    return { models_dir, files, complete: false };
  }
  const deadline = now() + limits.budgetMs;
  let entries = 0;
  const pending: { readonly dir: string; readonly rel: string; readonly depth: number }[] = [
    { dir: root, rel: "", depth: 0 },
  ];
  /** Adds one file, or returns false when the walk must stop at a bound. */
  const add = (path: string, size: number): boolean => {
    if (files.length >= limits.maxFiles) return false;
    files.push({ path, size_bytes: size });
    return true;
  };
  walk: while (pending.length > 0) {
    const folder = pending.pop() as (typeof pending)[number];
    let handle: AsyncIterable<Dirent>;
    try {
      handle = await opendir(folder.dir);
    } catch {
      complete = false;
      continue;
    }
    try {
      for await (const entry of handle) {
        entries += 1;
        if (entries > limits.maxEntries || now() > deadline) {
          complete = false;
          break walk;
        }
        const rel = folder.rel === "" ? entry.name : `${folder.rel}/${entry.name}`;
        const full = join(folder.dir, entry.name);
        if (entry.isDirectory()) {
          if (folder.depth + 1 < limits.maxDepth)
            pending.push({ dir: full, rel, depth: folder.depth + 1 });
          else complete = false;
          continue;
        }
        if (entry.name.endsWith(PARTIAL)) continue;
        const size = await sizeOf(root, full, entry);
        if (size === "unknown") complete = false;
        else if (size !== null && !add(rel, size)) {
          complete = false;
          break walk;
        }
      }
    } catch (error) {
      // The folder went away or became unreadable mid-walk: what it held is not known.
      if (code(error) !== "ENOENT") complete = false;
    }
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { models_dir, files, complete };
};

/**
 * The size of a file a load could use, following a symlink that stays inside models_dir (a load
 * follows it there). null: nothing a load could use (a symlink out of models_dir or to nowhere,
 * a socket, a file gone since the folder was read); "unknown": a symlinked folder (not followed,
 * it could loop) or a file that cannot be read.
 */
const sizeOf = async (
  root: string,
  path: string,
  entry: Dirent,
): Promise<number | null | "unknown"> => {
  if (!entry.isFile() && !entry.isSymbolicLink()) return null;
  try {
    const real = entry.isSymbolicLink() ? await realpath(path) : path;
    if (entry.isSymbolicLink() && !isInside(root, real)) return null;
    const info = await stat(real);
    if (info.isDirectory()) return "unknown";
    return info.isFile() ? info.size : null;
  } catch (error) {
    return code(error) === "ENOENT" ? null : "unknown";
  }
};

export interface HeldSourcesCacheOptions {
  readonly modelsDir: string;
  /** Time between the end of one scan and the start of the next (files copied in by hand). */
  readonly refreshMs: number;
  readonly limits?: ScanLimits;
  readonly timers?: Timers;
  /** A scan that failed outright (each distinct message once per run of failures). */
  readonly onWarning?: (message: string) => void;
  /** Tests pass a fake; the default walks the disk. */
  readonly scan?: (modelsDir: string, limits: ScanLimits) => Promise<HeldSources>;
}

/**
 * The last scan of models_dir, served from memory: discovery answers never wait on the disk.
 * It scans at start, every `refreshMs` after the previous scan ended, and when `refresh()` says
 * the files changed (a download completed). A refresh during a scan queues one more scan after
 * it rather than a second walk at once. Before the first scan ends the list is empty and says it
 * is incomplete, so cortex concludes nothing from it.
 */
export class HeldSourcesCache {
  readonly #options: HeldSourcesCacheOptions;
  readonly #timers: Timers;
  readonly #scan: (modelsDir: string, limits: ScanLimits) => Promise<HeldSources>;
  #current: HeldSources;
  #running: Promise<void> | null = null;
  #again = false;
  #timer: TimerHandle | null = null;
  #stopped = false;
  #lastWarning: string | null = null;

  constructor(options: HeldSourcesCacheOptions) {
    this.#options = options;
    this.#timers = options.timers ?? systemTimers;
    this.#scan = options.scan ?? ((dir, limits) => scanHeldSources(dir, limits));
    this.#current = {
      models_dir: resolve(options.modelsDir),
      files: [],
      complete: false,
    };
  }

  /** What the last scan found. */
  current(): HeldSources {
    return this.#current;
  }

  /** Scans now (resolves when done), then keeps rescanning on the timer until `stop`. */
  start(): Promise<void> {
    this.#stopped = false;
    return this.refresh();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) this.#timers.clear(this.#timer);
    this.#timer = null;
  }

  /** The files changed: scan again, after the scan under way if there is one. */
  refresh(): Promise<void> {
    if (this.#running !== null) {
      this.#again = true;
      return this.#running;
    }
    if (this.#timer !== null) this.#timers.clear(this.#timer);
    this.#timer = null;
    this.#running = this.#loop().finally(() => {
      this.#running = null;
      if (!this.#stopped)
        this.#timer = this.#timers.set(() => void this.refresh(), this.#options.refreshMs);
    });
    return this.#running;
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        this.#current = await this.#scan(
          this.#options.modelsDir,
          this.#options.limits ?? DEFAULT_SCAN_LIMITS,
        );
        this.#lastWarning = null;
      } catch (error) {
        // The last good list stays: a passing failure does not make every path source vanish.
        const message = `scanning models_dir for held sources failed: ${(error as Error).message}`;
        if (message !== this.#lastWarning) this.#options.onWarning?.(message);
        this.#lastWarning = message;
      }
    } while (this.#again && !this.#stopped);
  }
}
