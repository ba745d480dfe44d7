import type { CatalogueEntry, EstimateAnswer } from "@cortex/protocol";

// Asking neurons for estimates in the background (issue 18): one job per memory key the
// catalogue has and the book does not, at most `concurrency` at a time, each tried on the
// nodes that can run it (best first), again after a backoff when every one failed for now, and
// parked while no node can take it at all. The answers go to callbacks; this class only keeps
// the jobs going. Time comes from injected timers, so its tests run on fake ones.

/** One memory key to estimate, and the entry it is for. */
export interface EstimateJob {
  readonly key: string;
  readonly entry: CatalogueEntry;
}

/** The timers the scheduler uses; tests pass fake ones. */
export interface SchedulerTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface EstimateSchedulerOptions {
  /** Asks `node` for the entry's estimate; rejects with the neuron's error (its `code`). */
  readonly ask: (entry: CatalogueEntry, node: string) => Promise<EstimateAnswer>;
  /** Nodes that can estimate the entry now, best first; empty while none can. */
  readonly candidates: (entry: CatalogueEntry) => readonly string[];
  /** Whether the key's estimate is already known (from the database, or an earlier job). */
  readonly known: (key: string) => boolean;
  readonly onEstimate: (job: EstimateJob, answer: EstimateAnswer, node: string) => void;
  /** The source cannot be estimated: asking again would get the same answer. */
  readonly onRefused: (job: EstimateJob, reason: string) => void;
  /** Every node failed for now; the job is asked again after `delayMs`. */
  readonly onRetry?: (job: EstimateJob, reason: string, delayMs: number) => void;
  /** Estimates asked at once (default 2): each may make a neuron read a remote header. */
  readonly concurrency?: number;
  /** The first backoff after a failed round (default 1 s); it doubles up to `maxBackoffMs`. */
  readonly backoffMs?: number;
  /** The longest backoff (default 60 s). */
  readonly maxBackoffMs?: number;
  readonly timers?: SchedulerTimers;
}

/** Neuron codes that say the source itself cannot be estimated, on any node, any time. */
const FINAL_CODES: ReadonlySet<string> = new Set(["not_estimable", "invalid_request_error"]);

interface ErrorLike {
  readonly code?: unknown;
  readonly message?: unknown;
}

const fieldsOf = (error: unknown): ErrorLike =>
  typeof error === "object" && error !== null ? (error as ErrorLike) : {};

const messageOf = (error: unknown): string => {
  const { message } = fieldsOf(error);
  return typeof message === "string" ? message : String(error);
};

/** A job's progress. */
interface Running {
  job: EstimateJob;
  /** Nodes asked since the last backoff: the next attempt goes to one not among them. */
  readonly tried: Set<string>;
  /** Failed rounds so far: the backoff doubles with each. */
  rounds: number;
  state: "queued" | "running" | "parked" | "backoff";
  timer: unknown;
  /** Why the last attempt failed, for whoever waits on the estimate. */
  lastError: string | null;
  /** The catalogue dropped the key while it was being asked: it ends with this attempt. */
  unwanted: boolean;
}

/**
 * The background estimates. `sync` with the catalogue's jobs after every load or reload;
 * `fleetChanged` when nodes may have come up (parked jobs look again); `close` at shutdown.
 */
export class EstimateScheduler {
  readonly #options: EstimateSchedulerOptions;
  readonly #timers: SchedulerTimers;
  readonly #concurrency: number;
  /** Every unfinished job by key, in the order they were added. */
  readonly #jobs = new Map<string, Running>();
  /** Keys refused for good, with the reason; forgotten once the catalogue drops the key. */
  readonly #refused = new Map<string, string>();
  #running = 0;
  #closed = false;

  constructor(options: EstimateSchedulerOptions) {
    this.#options = options;
    this.#timers = options.timers ?? {
      setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
      clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
    };
    this.#concurrency = Math.max(1, options.concurrency ?? 2);
  }

  /**
   * The catalogue's jobs now: keys neither known nor refused nor under way are started; jobs
   * for keys it no longer has are dropped (one already asking finishes, its answer still filed:
   * the same key always gets the same answer).
   */
  sync(jobs: readonly EstimateJob[]): void {
    if (this.#closed) return;
    const wanted = new Map(jobs.map((job) => [job.key, job]));
    for (const [key, running] of this.#jobs) {
      running.unwanted = !wanted.has(key);
      if (running.unwanted && running.state !== "running") this.#drop(key, running);
    }
    for (const key of this.#refused.keys()) if (!wanted.has(key)) this.#refused.delete(key);
    for (const [key, job] of wanted) {
      const running = this.#jobs.get(key);
      if (running) {
        running.job = job;
        continue;
      }
      if (this.#refused.has(key) || this.#options.known(key)) continue;
      this.#jobs.set(key, {
        job,
        tried: new Set(),
        rounds: 0,
        state: "queued",
        timer: undefined,
        lastError: null,
        unwanted: false,
      });
    }
    this.#pump();
  }

  /** Nodes may have come up or gone: parked jobs look for one again. */
  fleetChanged(): void {
    if (this.#closed) return;
    let woke = false;
    for (const running of this.#jobs.values()) {
      if (running.state !== "parked") continue;
      if (this.#options.candidates(running.job.entry).length === 0) continue;
      running.state = "queued";
      woke = true;
    }
    if (woke) this.#pump();
  }

  /** Whether the key's estimate is still being worked on. */
  pending(key: string): boolean {
    return this.#jobs.has(key);
  }

  /** Why the key's last attempt failed, or why it waits (no node); null when it did not. */
  lastError(key: string): string | null {
    const running = this.#jobs.get(key);
    if (running?.state === "parked") return "no healthy node that can run it has answered yet";
    return running?.lastError ?? null;
  }

  /** Why the key cannot be estimated, when a neuron said so. */
  refusal(key: string): string | undefined {
    return this.#refused.get(key);
  }

  /** Stops every timer; answers still arriving are ignored. */
  close(): void {
    this.#closed = true;
    for (const [key, running] of this.#jobs) this.#drop(key, running);
  }

  #drop(key: string, running: Running): void {
    if (running.state === "backoff") this.#timers.clearTimeout(running.timer);
    this.#jobs.delete(key);
  }

  #pump(): void {
    for (const running of this.#jobs.values()) {
      if (this.#running >= this.#concurrency || this.#closed) return;
      if (running.state !== "queued") continue;
      this.#attempt(running);
    }
  }

  /** Asks the best node not yet tried this round, or backs off (or parks) when none is left. */
  #attempt(running: Running): void {
    const candidates = this.#options.candidates(running.job.entry);
    if (candidates.length === 0) {
      running.state = "parked";
      running.tried.clear();
      return;
    }
    const node = candidates.find((name) => !running.tried.has(name));
    if (node === undefined) {
      this.#backoff(running);
      return;
    }
    running.tried.add(node);
    running.state = "running";
    this.#running += 1;
    const { job } = running;
    let asked: Promise<EstimateAnswer>;
    try {
      asked = this.#options.ask(job.entry, node);
    } catch (error) {
      asked = Promise.reject(error);
    }
    asked.then(
      (answer) => this.#settle(running, () => this.#options.onEstimate(job, answer, node)),
      (error: unknown) => {
        const code = fieldsOf(error).code;
        const reason = messageOf(error);
        if (typeof code === "string" && FINAL_CODES.has(code)) {
          this.#settle(running, () => {
            if (running.unwanted) return;
            this.#refused.set(job.key, reason);
            this.#options.onRefused(job, reason);
          });
          return;
        }
        this.#running -= 1;
        running.lastError = reason;
        if (this.#closed || running.unwanted || this.#jobs.get(job.key) !== running) {
          if (this.#jobs.get(job.key) === running) this.#jobs.delete(job.key);
          this.#pump();
          return;
        }
        // Another node may answer: try it at once; after a full round, back off.
        running.state = "queued";
        this.#attempt(running);
        this.#pump();
      },
    );
  }

  /** The job is done: it leaves, the outcome is reported, the next job starts. */
  #settle(running: Running, report: () => void): void {
    this.#running -= 1;
    const current = this.#jobs.get(running.job.key) === running;
    if (current) this.#jobs.delete(running.job.key);
    if (!this.#closed) {
      // A report that throws must not stop the queue.
      try {
        report();
      } catch {}
    }
    this.#pump();
  }

  #backoff(running: Running): void {
    const base = this.#options.backoffMs ?? 1000;
    const max = this.#options.maxBackoffMs ?? 60_000;
    const delayMs = Math.min(max, base * 2 ** Math.min(running.rounds, 30));
    running.rounds += 1;
    running.tried.clear();
    running.state = "backoff";
    this.#options.onRetry?.(running.job, running.lastError ?? "no node answered", delayMs);
    running.timer = this.#timers.setTimeout(() => {
      if (this.#jobs.get(running.job.key) !== running || this.#closed) return;
      running.state = "queued";
      this.#pump();
    }, delayMs);
  }
}
