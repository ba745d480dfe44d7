import { write as fsWrite } from "node:fs";

// Where the servers' pino JSON lines go (stdout). It replaces pino's default destination
// (sonic-boom) because of how that one fails: once the reader of stdout has gone, its flush at
// exit retries an EPIPE write forever, and a process that was asked to stop never exits. This
// one never blocks the event loop, never throws, and gives up for good on the first real error.

/** Writes `chunk` to the output and calls back with the bytes written or the error. */
export type WriteChunk = (
  chunk: Buffer,
  done: (error: NodeJS.ErrnoException | null, written: number) => void,
) => void;

export interface LogOutputOptions {
  readonly write: WriteChunk;
  /** Lines waiting beyond this many bytes are dropped (a reader that does not keep up). */
  readonly maxQueuedBytes?: number;
  /** A write the output could not take yet (EAGAIN) is retried after this long. */
  readonly retryMs?: number;
  /** The output failed (EPIPE, EBADF, …): called once, after which every line is dropped. */
  readonly onBroken?: (error: NodeJS.ErrnoException) => void;
  /** Lines were dropped because the queue was full; called once the queue has drained. */
  readonly onDropped?: (lines: number) => void;
}

const RETRY_CODES = new Set(["EAGAIN", "EWOULDBLOCK", "EBUSY", "EINTR"]);

/**
 * An asynchronous, bounded writer for log lines: one write in flight at a time, everything
 * logged meanwhile joined into the next one. `write` is what pino calls for each line.
 */
export class LogOutput {
  readonly #options: LogOutputOptions;
  readonly #maxQueued: number;
  #queue: string[] = [];
  #queuedBytes = 0;
  #writing = false;
  #broken = false;
  #dropped = 0;
  #idle: (() => void)[] = [];

  constructor(options: LogOutputOptions) {
    this.#options = options;
    this.#maxQueued = options.maxQueuedBytes ?? 16 * 1024 * 1024;
  }

  /** True once the output has failed; nothing is written after that. */
  get broken(): boolean {
    return this.#broken;
  }

  write(line: string): void {
    if (this.#broken) return;
    const bytes = Buffer.byteLength(line);
    if (this.#queuedBytes + bytes > this.#maxQueued) {
      this.#dropped += 1;
      return;
    }
    this.#queue.push(line);
    this.#queuedBytes += bytes;
    if (!this.#writing) this.#next();
  }

  /** Resolves once everything logged so far is written (or the output has failed). */
  flushed(): Promise<void> {
    if (!this.#writing) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #next(): void {
    if (this.#broken || this.#queue.length === 0) {
      this.#writing = false;
      if (this.#dropped > 0 && !this.#broken) {
        const dropped = this.#dropped;
        this.#dropped = 0;
        this.#options.onDropped?.(dropped);
        if (this.#writing) return;
      }
      for (const resolve of this.#idle.splice(0)) resolve();
      return;
    }
    this.#writing = true;
    const chunk = Buffer.from(this.#queue.join(""));
    this.#queue = [];
    this.#send(chunk);
  }

  #send(chunk: Buffer): void {
    let called = false;
    this.#options.write(chunk, (error, written) => {
      // A sink that calls back twice must not start two writes.
      if (called) return;
      called = true;
      if (error) {
        if (error.code !== undefined && RETRY_CODES.has(error.code)) {
          setTimeout(() => this.#send(chunk), this.#options.retryMs ?? 50).unref?.();
          return;
        }
        this.#fail(error);
        return;
      }
      const rest = chunk.subarray(written);
      this.#queuedBytes -= written;
      if (rest.length > 0) {
        this.#send(rest);
        return;
      }
      this.#next();
    });
  }

  #fail(error: NodeJS.ErrnoException): void {
    this.#broken = true;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#writing = false;
    for (const resolve of this.#idle.splice(0)) resolve();
    try {
      this.#options.onBroken?.(error);
    } catch {
      // Reporting the failure must not fail the logger.
    }
  }
}

/** A WriteChunk for a file descriptor (1: stdout), through the thread pool: never blocks. */
export const fdWriter =
  (fd: number): WriteChunk =>
  (chunk, done) => {
    try {
      fsWrite(fd, chunk, 0, chunk.length, null, (error, written) => done(error, written));
    } catch (error) {
      // A closed or invalid descriptor can throw at once instead of calling back.
      done(error as NodeJS.ErrnoException, 0);
    }
  };

/**
 * Makes writes to a closed stdout or stderr harmless: without a listener, the 'error' (EPIPE)
 * of a write by anyone (a warning, a library) is an uncaught exception that ends the process.
 */
export const ignoreStdioErrors = (streams: readonly NodeJS.WriteStream[]): void => {
  for (const stream of streams) stream.on("error", () => {});
};

/**
 * The log output of a server process (`app` names it in the one note on stderr when the output
 * breaks): stdout through a LogOutput, with stdio errors made harmless. `onDropped` is told how
 * many lines a reader that fell behind lost.
 */
export const processLogOutput = (app: string, onDropped: (lines: number) => void): LogOutput => {
  ignoreStdioErrors([process.stdout, process.stderr]);
  return new LogOutput({
    write: fdWriter(1),
    onBroken: (error) => {
      process.stderr.write(
        `${app}: log output failed (${error.code ?? error.message}); logging stops\n`,
      );
    },
    onDropped,
  });
};
