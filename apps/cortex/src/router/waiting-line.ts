import type { Abortable } from "@cortex/http-kit";
import { MAX_TIMER_MS } from "@cortex/protocol";

/** A request waiting in a line: its place (ticket) and how to wake it. */
export interface LineWaiter<T> {
  /** Arrival order; a request that waits again keeps its first ticket, so its place. */
  readonly ticket: number;
  /** Leaves the line and ends the wait with `value`. */
  readonly wake: (value: T) => void;
}

export interface LineOptions {
  readonly deadlineMs: number;
  readonly nowMs: number;
  /** The error of a wait that reached its deadline. */
  readonly timeout: () => Error;
  /** The waiter has left the line (however it ended): tidy what held the line. */
  readonly left: () => void;
  /** The wait ended without a wake (deadline or abort): the line changed for the others. */
  readonly gaveUp?: () => void;
}

/**
 * Puts the waiter `make` builds into `line`, sorted by ticket (a returning request goes back to
 * where it stood, not to the end), and resolves with what it is woken with; rejects with
 * `timeout()` at the deadline or with the signal's reason when the client goes away. However
 * the wait ends, the waiter has left the line first. Shared by the admission and swap queues.
 */
export const waitInLine = <T, W extends LineWaiter<T>>(
  line: W[],
  make: (wake: (value: T) => void) => W,
  signal: Abortable,
  options: LineOptions,
): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const leave = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      const index = line.indexOf(waiter);
      if (index >= 0) line.splice(index, 1);
      options.left();
    };
    const waiter = make((value) => {
      leave();
      resolve(value);
    });
    const giveUp = (error: unknown) => {
      leave();
      reject(error);
      options.gaveUp?.();
    };
    const onAbort = () => giveUp(signal.reason);
    const timer = setTimeout(
      () => giveUp(options.timeout()),
      Math.min(MAX_TIMER_MS, Math.max(0, options.deadlineMs - options.nowMs)),
    );
    signal.addEventListener("abort", onAbort, { once: true });
    let at = line.length;
    while (at > 0 && (line[at - 1]?.ticket ?? 0) > waiter.ticket) at -= 1;
    line.splice(at, 0, waiter);
  });
