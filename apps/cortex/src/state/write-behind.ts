import type { Log } from "../log.js";

export interface WriteBehindOptions {
  /** How often pending items are written (default 1000 ms; the timer is unref'ed). */
  flushIntervalMs?: number;
  /** A flush is scheduled (setImmediate, never inline) once this many are pending (default 500). */
  batchSize?: number;
  /** Pending items kept at most; beyond that the oldest are dropped and counted (default 100,000). */
  maxPending?: number;
  log?: Log;
}

export const DEFAULT_FLUSH_INTERVAL_MS = 1_000;
export const DEFAULT_BATCH_SIZE = 500;
export const DEFAULT_MAX_PENDING = 100_000;

/** Counters for metrics and tests. */
export interface WriteBehindStats {
  /** Waiting to be written. */
  readonly pending: number;
  /** Written and committed. */
  readonly written: number;
  /** Lost: pushed out of a full buffer, recorded after close, or in a batch that could not be written. */
  readonly dropped: number;
  /** Refused by the database one by one (a constraint or an unbindable value); the rest of the batch is kept. */
  readonly rejected: number;
}

/** Errors that concern one row only: the row is skipped and the transaction goes on. */
const isRowError = (error: unknown): boolean => {
  if (error instanceof TypeError || error instanceof RangeError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return (
    typeof code === "string" &&
    (code.startsWith("SQLITE_CONSTRAINT") || code === "SQLITE_MISMATCH" || code === "SQLITE_TOOBIG")
  );
};

/** Errors worth retrying with the same batch on the next flush: another connection held the lock. */
const isTransient = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))
  );
};

export interface WriteBehindSink<T> {
  /** Runs `work` in one synchronous transaction (drizzle's db.transaction). */
  transaction(work: () => void): void;
  /** Writes one item inside that transaction. */
  write(item: T): void;
}

/**
 * A bounded buffer written to the database in batches, off the caller's path: `push` is O(1)
 * and never touches the database; a timer, a full batch (via setImmediate) or an explicit
 * `flush()` writes everything pending in one synchronous transaction.
 *
 * On failure: a row the database refuses is skipped and counted in `rejected`; a lock held
 * past busy_timeout puts the batch back for the next flush; any other error (disk full, I/O)
 * drops the batch, counts it in `dropped` and logs it, so a broken disk never grows memory.
 */
export class WriteBehind<T> implements WriteBehindStats {
  readonly #name: string;
  readonly #sink: WriteBehindSink<T>;
  readonly #log: Log | undefined;
  readonly #batchSize: number;
  readonly #maxPending: number;
  // A queue as an array plus a head index: dropping the oldest is O(1), and the array is
  // compacted once the dead prefix is at least half of it (amortised O(1) per item).
  #items: T[] = [];
  #head = 0;
  #written = 0;
  #dropped = 0;
  #rejected = 0;
  #reportedDropped = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #immediate: ReturnType<typeof setImmediate> | undefined;
  #closed = false;

  constructor(name: string, sink: WriteBehindSink<T>, options: WriteBehindOptions = {}) {
    this.#name = name;
    this.#sink = sink;
    this.#log = options.log;
    this.#batchSize = Math.max(1, options.batchSize ?? DEFAULT_BATCH_SIZE);
    this.#maxPending = Math.max(1, options.maxPending ?? DEFAULT_MAX_PENDING);
    const interval = options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS;
    this.#timer = setInterval(() => this.flush(), interval);
    this.#timer.unref();
  }

  get pending(): number {
    return this.#items.length - this.#head;
  }

  get written(): number {
    return this.#written;
  }

  get dropped(): number {
    return this.#dropped;
  }

  get rejected(): number {
    return this.#rejected;
  }

  push(item: T): void {
    if (this.#closed) {
      this.#dropped += 1;
      return;
    }
    this.#items.push(item);
    if (this.pending > this.#maxPending) this.#dropOldest(this.pending - this.#maxPending);
    if (this.pending >= this.#batchSize && this.#immediate === undefined)
      this.#immediate = setImmediate(() => {
        this.#immediate = undefined;
        this.flush();
      });
  }

  /** Writes everything pending now, in one transaction; returns how many items were committed. */
  flush(): number {
    if (this.#immediate !== undefined) {
      clearImmediate(this.#immediate);
      this.#immediate = undefined;
    }
    this.#reportDrops();
    if (this.pending === 0) return 0;
    const batch = this.#head === 0 ? this.#items : this.#items.slice(this.#head);
    this.#items = [];
    this.#head = 0;
    let committed = 0;
    let rejected = 0;
    let firstRejection: unknown;
    try {
      this.#sink.transaction(() => {
        for (const item of batch) {
          try {
            this.#sink.write(item);
            committed += 1;
          } catch (error) {
            if (!isRowError(error)) throw error;
            rejected += 1;
            firstRejection ??= error;
          }
        }
      });
    } catch (error) {
      if (isTransient(error)) {
        // Nothing was pushed meanwhile (all of this is synchronous): put the batch back as it was.
        this.#items = batch;
        if (this.pending > this.#maxPending) this.#dropOldest(this.pending - this.#maxPending);
        this.#log?.warn(
          { err: error, pending: this.pending },
          `${this.#name}: database busy, will retry`,
        );
      } else {
        this.#dropped += batch.length;
        this.#reportedDropped = this.#dropped;
        this.#log?.error({ err: error, dropped: batch.length }, `${this.#name}: batch lost`);
      }
      return 0;
    }
    this.#written += committed;
    if (rejected > 0) {
      this.#rejected += rejected;
      this.#log?.warn(
        { err: firstRejection, rejected },
        `${this.#name}: rows refused by the database`,
      );
    }
    return committed;
  }

  /** Flushes what is pending and stops the timer; later pushes are dropped (and counted). */
  close(): void {
    if (this.#closed) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.flush();
    this.#closed = true;
    if (this.pending > 0) {
      // The last flush was put back (database busy): nothing will retry it now.
      this.#dropped += this.pending;
      this.#log?.error({ dropped: this.pending }, `${this.#name}: closed with unwritten entries`);
      this.#items = [];
      this.#head = 0;
    }
  }

  #dropOldest(count: number): void {
    this.#head += count;
    this.#dropped += count;
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }

  // Logged from flush, never from push: the request path must not pay for logging.
  #reportDrops(): void {
    if (this.#dropped === this.#reportedDropped) return;
    this.#log?.warn(
      { dropped: this.#dropped - this.#reportedDropped, total: this.#dropped },
      `${this.#name}: buffer full, oldest entries dropped`,
    );
    this.#reportedDropped = this.#dropped;
  }
}
