import type { Log } from "@cortex/http-kit";

/** Delays between failed joins: doubling from the first to the last, then the last again. */
export const JOIN_BACKOFF = { firstMs: 1000, maxMs: 60_000 } as const;

/**
 * Cortex polls `/models` every `poll_interval_ms` (2 s by default) and `/discovery` every
 * minute; a neuron cortex knows is asked well within 10 s. With no such call for 3 × 10 s the
 * neuron takes it that cortex forgot it (removed, restarted on a fresh database) and joins
 * again. A rejoin of a node cortex does know is harmless: it only updates the same entry.
 */
export const EXPECTED_POLL_MS = 10_000;
export const FORGOTTEN_AFTER_MS = 3 * EXPECTED_POLL_MS;

/** How long one join call may take. */
const JOIN_TIMEOUT_MS = 10_000;

/** Why a join failed, for one clear log line each. */
export type JoinFailure = "unreachable" | "unauthorized" | "conflict" | "disabled" | "rejected";

export interface JoinerOptions {
  readonly cortexUrl: string;
  readonly joinToken: string;
  /** What the neuron joins as: its name, the URL cortex reaches it at, its own token. */
  readonly name: string;
  readonly url: string;
  readonly token: string;
  readonly log: Log;
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
  readonly forgottenAfterMs?: number;
}

const failureOf = (status: number): JoinFailure =>
  status === 401 || status === 403
    ? "unauthorized"
    : status === 409
      ? "conflict"
      : status === 404
        ? "disabled"
        : "rejected";

const MESSAGES: Record<JoinFailure, string> = {
  unreachable: "cannot reach cortex to join; trying again",
  unauthorized: "cortex refused the join token (check join_token against cortex's join_tokens)",
  conflict: "cortex has a node of this name in cortex.yaml; a neuron cannot join under it",
  disabled: "cortex does not take joins (no join_tokens in its cortex.yaml, or not a cortex)",
  rejected: "cortex rejected the join",
};

/**
 * Joins this neuron to cortex (`POST /api/neurons/join`): once started, at once; after a
 * failure again with backoff (JOIN_BACKOFF); after a success again whenever cortex has not
 * polled the neuron for `forgottenAfterMs` (see FORGOTTEN_AFTER_MS): `polled()` is called on
 * each of cortex's polls. `stop` ends it, a join under way included.
 */
export class Joiner {
  readonly #options: JoinerOptions;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #forgottenAfterMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #controller: AbortController | undefined;
  #failures = 0;
  #lastSeenMs = 0;
  #joined = false;
  #running = false;
  #joins = 0;

  constructor(options: JoinerOptions) {
    this.#options = options;
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
    this.#forgottenAfterMs = options.forgottenAfterMs ?? FORGOTTEN_AFTER_MS;
  }

  /** Successful joins so far. */
  get joins(): number {
    return this.#joins;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#join();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#controller?.abort();
  }

  /** Cortex polled this neuron: it knows it. */
  polled(): void {
    this.#lastSeenMs = this.#now();
  }

  /** The delay before the next try after `failures` failed joins in a row. */
  static backoffMs(failures: number): number {
    const exponent = Math.min(Math.max(failures - 1, 0), 16);
    return Math.min(JOIN_BACKOFF.firstMs * 2 ** exponent, JOIN_BACKOFF.maxMs);
  }

  #schedule(delayMs: number, work: () => void): void {
    if (!this.#running) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#running) work();
    }, delayMs);
    this.#timer.unref?.();
  }

  /** After a join: look whether cortex still polls, a third of the bound from now. */
  #watch(): void {
    this.#schedule(Math.max(1, Math.floor(this.#forgottenAfterMs / 3)), () => {
      const silentMs = this.#now() - this.#lastSeenMs;
      if (silentMs < this.#forgottenAfterMs) {
        this.#watch();
        return;
      }
      this.#options.log.warn(
        { cortex: this.#options.cortexUrl, silent_ms: silentMs },
        "cortex has not polled this neuron for a while; joining again",
      );
      void this.#join();
    });
  }

  async #join(): Promise<void> {
    const { cortexUrl, joinToken, name, url, token, log } = this.#options;
    const controller = new AbortController();
    this.#controller = controller;
    const timeout = setTimeout(() => controller.abort(), JOIN_TIMEOUT_MS);
    let failure: JoinFailure | undefined;
    let detail: Record<string, unknown> = {};
    try {
      const response = await this.#fetch(`${cortexUrl.replace(/\/+$/, "")}/api/neurons/join`, {
        method: "POST",
        headers: { authorization: `Bearer ${joinToken}`, "content-type": "application/json" },
        body: JSON.stringify({ name, url, token }),
        signal: controller.signal,
      });
      const text = await response.text().catch(() => "");
      if (!response.ok) {
        failure = failureOf(response.status);
        detail = { status: response.status, answer: text.slice(0, 300) };
      }
    } catch (error) {
      failure = "unreachable";
      detail = { error: error instanceof Error ? error.message : String(error) };
    } finally {
      clearTimeout(timeout);
      if (this.#controller === controller) this.#controller = undefined;
    }
    if (!this.#running) return;
    if (failure === undefined) {
      this.#failures = 0;
      this.#joins += 1;
      // Cortex polls a node at once when it joins; the bound runs from the join.
      this.#lastSeenMs = this.#now();
      log.info({ cortex: cortexUrl, url, rejoin: this.#joined }, "joined cortex");
      this.#joined = true;
      this.#watch();
      return;
    }
    this.#failures += 1;
    const retryMs = Joiner.backoffMs(this.#failures);
    log.warn({ cortex: cortexUrl, ...detail, retry_ms: retryMs, failure }, MESSAGES[failure]);
    this.#schedule(retryMs, () => void this.#join());
  }
}
