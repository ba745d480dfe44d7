import type { TimerHandle, Timers } from "../timers.js";

// Liveness of a ready harness: a process that lives but no longer answers (deadlocked, stopped
// with SIGSTOP, wedged in a driver call) never exits, so crash recovery alone would leave its
// model `loaded` forever, every request to it hanging. Its ready path is probed on a timer; a
// harness that fails `unhealthyAfterFailures` probes in a row is declared unresponsive, and its
// supervisor kills it and recovers it as it would a crash.

export interface LivenessSettings {
  /** `health_interval_ms`: from the start of one probe to the start of the next; 0: never probe. */
  readonly healthIntervalMs: number;
  /** `unhealthy_after_failures`: failed probes in a row that make a harness unresponsive. */
  readonly unhealthyAfterFailures: number;
}

export interface LivenessDeps {
  /** One probe: does `url` answer 2xx now? Aborting `signal` ends it (a timeout). */
  readonly probe: (url: string, signal: AbortSignal) => Promise<boolean>;
  readonly timers: Timers;
  readonly now: () => number;
}

/** What one watch looks at, and whom it tells. */
export interface LivenessWatch {
  /** The harness's ready path, as readiness polls it (`http://127.0.0.1:<port>/health`). */
  readonly url: string;
  /** When bytes of an answer last flowed from this harness to a client, or null. */
  readonly lastTrafficMs: () => number | null;
  /** Called once, after the last failure allowed; the watch has ended by then. */
  readonly onUnresponsive: (reason: string) => void;
}

/** A probe's time limit: short, and never longer than the interval (so probes never overlap). */
export const probeTimeoutMs = (intervalMs: number): number => Math.min(2000, intervalMs);

/**
 * Probes one ready harness every `healthIntervalMs` until stopped or unresponsive.
 *
 * - Single-flight: the next probe is scheduled only once this one has ended or timed out
 *   (`probeTimeoutMs`, then aborted). A probe that ignores its abort still counts as running:
 *   the next tick starts no second one beside it, waits a timeout for it, and fails either way.
 * - A harness whose answer bytes reached a client within the last interval is alive without a
 *   probe: a busy llama.cpp may answer its health path late while it streams.
 * - A successful probe (or such traffic) resets the count of failures.
 *
 * Everything runs on the injected timers and clock, so tests drive it with fake ones.
 */
export class LivenessProbe {
  readonly #watch: LivenessWatch;
  readonly #deps: LivenessDeps;
  readonly #settings: LivenessSettings;
  #failures = 0;
  #timer: TimerHandle | null = null;
  /** The probe under way, until it settles (even past its timeout); aborted on stop. */
  #inFlight: { readonly controller: AbortController; readonly settled: Promise<unknown> } | null =
    null;
  /** Ends the wait for a probe's answer at once (on stop). */
  #wake: (() => void) | null = null;
  #ended = false;

  constructor(watch: LivenessWatch, deps: LivenessDeps, settings: LivenessSettings) {
    this.#watch = watch;
    this.#deps = deps;
    this.#settings = settings;
  }

  /** Failed probes in a row so far. */
  get failures(): number {
    return this.#failures;
  }

  /** Starts probing: the first probe one interval from now (readiness has just answered). */
  start(): void {
    if (this.#ended || this.#timer || this.#settings.healthIntervalMs <= 0) return;
    this.#schedule(this.#settings.healthIntervalMs);
  }

  /** Stops for good: no further probe, the one under way aborted and its answer ignored. */
  stop(): void {
    this.#ended = true;
    if (this.#timer) this.#deps.timers.clear(this.#timer);
    this.#timer = null;
    this.#wake?.();
    this.#inFlight?.controller.abort(new Error("liveness watch stopped"));
  }

  #schedule(delayMs: number): void {
    this.#timer = this.#deps.timers.set(() => {
      this.#timer = null;
      void this.#tick();
    }, delayMs);
  }

  async #tick(): Promise<void> {
    if (this.#ended) return;
    const intervalMs = this.#settings.healthIntervalMs;
    const startedMs = this.#deps.now();
    const traffic = this.#watch.lastTrafficMs();
    const streaming = traffic !== null && startedMs - traffic < intervalMs;
    const failure = streaming ? null : await this.#probe();
    if (this.#ended) return;
    this.#failures = failure === null ? 0 : this.#failures + 1;
    if (failure !== null && this.#failures >= this.#settings.unhealthyAfterFailures) {
      this.stop();
      this.#watch.onUnresponsive(
        `harness stopped answering ${pathOf(this.#watch.url)}: ${this.#failures} probes in a row failed (every ${intervalMs} ms; the last: ${failure})`,
      );
      return;
    }
    // A probe that took its whole interval (timeout = interval) is followed by the next at once.
    const delayMs = startedMs + intervalMs - this.#deps.now();
    if (delayMs > 0) this.#schedule(delayMs);
    else void this.#tick();
  }

  /** One probe within its timeout: null when it answered 2xx, else why it failed. */
  async #probe(): Promise<string | null> {
    const timeoutMs = probeTimeoutMs(this.#settings.healthIntervalMs);
    const earlier = this.#inFlight;
    if (earlier) {
      const ended = await this.#within(
        earlier.settled.then(() => true),
        timeoutMs,
      );
      return ended
        ? "the previous probe ended only long after its timeout"
        : "the previous probe has still not ended";
    }
    const controller = new AbortController();
    const answer = this.#deps.probe(this.#watch.url, controller.signal).then(
      (ok) => (ok ? "ok" : "no 2xx answer"),
      () => "no answer",
    );
    const inFlight = { controller, settled: answer };
    this.#inFlight = inFlight;
    void answer.then(() => {
      if (this.#inFlight === inFlight) this.#inFlight = null;
    });
    const result = await this.#within(answer, timeoutMs);
    if (result === undefined) {
      controller.abort(new Error(`no answer within ${timeoutMs} ms`));
      return `no answer within ${timeoutMs} ms`;
    }
    return result === "ok" ? null : result;
  }

  /** What `promise` settles to within `ms`, or undefined (the time ran out, or a stop). */
  #within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve) => {
      const timer = this.#deps.timers.set(() => {
        this.#wake = null;
        resolve(undefined);
      }, ms);
      this.#wake = () => {
        this.#deps.timers.clear(timer);
        this.#wake = null;
        resolve(undefined);
      };
      void promise.then((value) => {
        this.#deps.timers.clear(timer);
        this.#wake = null;
        resolve(value);
      });
    });
  }
}

const pathOf = (url: string): string => {
  try {
    return new URL(url).pathname;
  } catch {
    return url;
  }
};
