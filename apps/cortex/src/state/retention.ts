import { sql } from "drizzle-orm";
import type { Log } from "../log.js";
import type { CortexDb } from "./database.js";
import { requestLog } from "./schema.js";

const DAY_MS = 86_400_000;

/**
 * Deletes at most `limit` requests logged before `beforeMs`, oldest first, through the `at`
 * index; answers how many went. One bounded statement, so a caller can spread a large prune
 * over many turns of the event loop.
 */
export const pruneRequestLog = (db: CortexDb, beforeMs: number, limit: number): number =>
  db.run(
    sql`delete from ${requestLog} where ${requestLog.id} in (select ${requestLog.id} from ${requestLog} where ${requestLog.at} < ${beforeMs} order by ${requestLog.at} limit ${limit})`,
  ).changes;

export interface RetentionOptions {
  /** Requests older than this are deleted; 0 keeps everything. */
  readonly retentionDays: number;
  /** How often to prune (the first run is right after start). */
  readonly everyMs?: number;
  /** Rows per statement; the loop yields to the event loop between statements. */
  readonly batch?: number;
  readonly now?: () => number;
  readonly log?: Log;
}

/**
 * Keeps the request log to its retention window: at start and then hourly, deletes what fell out
 * of it in batches of a few thousand rows, yielding between them, so a busy cortex never stalls
 * on a large prune (the proxy shares this thread with SQLite).
 */
export class RequestLogRetention {
  readonly #db: CortexDb;
  readonly #options: RetentionOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;
  #stopped = false;

  constructor(db: CortexDb, options: RetentionOptions) {
    this.#db = db;
    this.#options = options;
  }

  start(): void {
    if (this.#options.retentionDays <= 0 || this.#timer) return;
    this.#timer = setInterval(() => void this.prune(), this.#options.everyMs ?? 3_600_000);
    this.#timer.unref();
    setImmediate(() => void this.prune());
  }

  /** One pass over everything past the window; answers how many rows went. Never overlaps. */
  prune(): Promise<number> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #pass(): Promise<number> {
    const { retentionDays, batch = 2000, now = Date.now, log } = this.#options;
    if (retentionDays <= 0) return 0;
    const before = now() - retentionDays * DAY_MS;
    let total = 0;
    try {
      for (;;) {
        if (this.#stopped) break;
        const deleted = pruneRequestLog(this.#db, before, batch);
        total += deleted;
        if (deleted < batch) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      // A locked or closed database: the next pass tries again.
      log?.warn({ err: error }, "request log pruning failed");
    }
    if (total > 0)
      log?.info({ deleted: total, retention_days: retentionDays }, "request log pruned");
    return total;
  }

  /** Stops the timer and ends a running pass after its current batch. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
