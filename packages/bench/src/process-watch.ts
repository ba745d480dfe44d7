import { metricSamples, now, rssMiB, type Spread, sleep, spread } from "./support.js";

// Watching a running app while a benchmark works it: /health polled one poll after the other,
// RSS sampled on a timer, and cortex's own request counters read before and after.

/** A /health poll (or /metrics read) not answered within this long fails, and the watcher moves on. */
export const HEALTH_TIMEOUT_MS = 5000;

export interface HealthPoll {
  /** When the poll was sent (Date.now()). */
  readonly at: number;
  readonly ms: number;
  readonly ok: boolean;
  /** `status <n>` for an answer other than 200, else the error's code or name; null when ok. */
  readonly error: string | null;
}

export interface RssSample {
  readonly at: number;
  readonly mib: number;
}

/** /health polled one after the other, every `everyMs`, until `stop`. */
export const pollHealth = (url: string, everyMs: number) => {
  const polls: HealthPoll[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const at = Date.now();
      const start = now();
      try {
        const res = await fetch(`${url}/health`, {
          signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
        });
        await res.arrayBuffer();
        polls.push({
          at,
          ms: now() - start,
          ok: res.status === 200,
          error: res.status === 200 ? null : `status ${res.status}`,
        });
      } catch (error) {
        const e = error as { name?: string; cause?: { code?: string } };
        polls.push({ at, ms: now() - start, ok: false, error: e.cause?.code ?? e.name ?? "?" });
      }
      await sleep(everyMs);
    }
  })();
  return {
    polls,
    stop: async () => {
      running = false;
      await done;
    },
  };
};

/** The status of one /health request; 0 when none came within HEALTH_TIMEOUT_MS. */
export const healthStatus = (url: string): Promise<number> =>
  fetch(`${url}/health`, { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) })
    .then((res) => res.status)
    .catch(() => 0);

export interface HealthSummary extends Spread {
  readonly failures: number;
  readonly failure_kinds: Record<string, number>;
}

export const healthOf = (polls: readonly HealthPoll[]): HealthSummary => {
  const failureKinds: Record<string, number> = {};
  for (const p of polls)
    if (!p.ok) failureKinds[p.error ?? "?"] = (failureKinds[p.error ?? "?"] ?? 0) + 1;
  return {
    ...spread(polls.map((p) => p.ms)),
    failures: polls.filter((p) => !p.ok).length,
    failure_kinds: failureKinds,
  };
};

/** A process's RSS every `everyMs`; a sample that cannot be read means the process is gone. */
export const sampleRss = (pid: number, everyMs: number) => {
  const samples: RssSample[] = [];
  let gone = false;
  const take = () => {
    try {
      samples.push({ at: Date.now(), mib: rssMiB(pid) });
    } catch {
      gone = true;
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    samples,
    gone: () => gone,
    stop: () => {
      clearInterval(timer);
      take();
    },
  };
};

/** cortex_requests_total summed by status: what cortex itself says it answered. */
export const requestsByStatus = async (cortexUrl: string): Promise<Record<string, number>> => {
  // A cortex that has died has no counts: {} (whoever asked reports it dead).
  const text = await fetch(`${cortexUrl}/metrics`, {
    signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
  })
    .then((res) => res.text())
    .catch(() => "");
  const counts: Record<string, number> = {};
  for (const { labels, value } of metricSamples(text, "cortex_requests_total")) {
    const status = /status="(\d+)"/.exec(labels)?.[1] ?? "?";
    counts[status] = (counts[status] ?? 0) + value;
  }
  return counts;
};

/** What counted up between two readings of the same counters (keys that did not move dropped). */
export const countsSince = (
  after: Record<string, number>,
  before: Record<string, number>,
): Record<string, number> =>
  Object.fromEntries(
    Object.entries(after)
      .map(([key, n]) => [key, n - (before[key] ?? 0)] as const)
      .filter(([, n]) => n !== 0),
  );
