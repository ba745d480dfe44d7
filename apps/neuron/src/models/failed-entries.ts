/**
 * Failed models stay listed (with their error) so an operator can see why, but not forever: a
 * caller retrying loads under new ids once filled /models with hundreds of them. Beyond this
 * many the oldest failures are forgotten, and any failure is forgotten after FAILED_TTL_MS.
 */
export const MAX_FAILED_ENTRIES = 32;
export const FAILED_TTL_MS = 60 * 60_000;

/** When each failed entry failed, oldest first (a new failure moves it to the end). */
export class FailedEntries<Entry> {
  readonly #at = new Map<Entry, number>();

  failed(entry: Entry, now: number): void {
    this.#at.delete(entry);
    this.#at.set(entry, now);
  }

  /**
   * The entries to forget now: those older than FAILED_TTL_MS, then the oldest beyond
   * MAX_FAILED_ENTRIES. One being loaded again (`busy`: its failure may still be settling) is
   * left alone; one that is no longer failed, or already gone (`stillFailed` false), just
   * leaves the list.
   */
  expired(
    now: number,
    stillFailed: (entry: Entry) => boolean,
    busy: (entry: Entry) => boolean,
  ): Entry[] {
    let excess = -MAX_FAILED_ENTRIES;
    for (const entry of this.#at.keys()) {
      if (stillFailed(entry)) excess += 1;
      else this.#at.delete(entry);
    }
    const expired: Entry[] = [];
    for (const [entry, at] of this.#at) {
      if (busy(entry)) continue;
      if (excess <= 0 && now - at < FAILED_TTL_MS) continue;
      excess -= 1;
      this.#at.delete(entry);
      expired.push(entry);
    }
    return expired;
  }
}
