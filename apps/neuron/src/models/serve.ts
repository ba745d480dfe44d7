import type { Abortable } from "@cortex/http-kit";
import { NeuronError } from "../errors.js";
import { AdmissionError } from "./admission.js";
import type { ModelEntry } from "./model-entry.js";

/** What serving a request needs from the lifecycle. */
export interface ServeHooks {
  readonly now: () => number;
  /**
   * Asks for a lazy reload of an `unloaded` model (it may wait its turn in the swap queue),
   * unless the neuron is shutting down; throws when no wait could ever make room for it. A
   * promise when it must first read the GPUs again (it then settles once it asked, or threw).
   */
  readonly reload: (entry: ModelEntry) => Promise<void> | undefined;
  /**
   * Waits for the model's load under way; a wait in the swap queue ends with 504 queue_timeout
   * at the queue timeout counted from `arrivedMs`.
   */
  readonly awaitLoad: (
    entry: ModelEntry,
    signal: Abortable | undefined,
    arrivedMs: number,
  ) => Promise<void>;
  /** The model's idle TTL is paused while a request runs. */
  readonly pauseIdle: (entry: ModelEntry) => void;
  /**
   * A request ended, however (its slot released, or its wait given up): the idle TTL restarts
   * after the last one, and the swap queue looks again.
   */
  readonly finished: (entry: ModelEntry) => void;
}

/**
 * What a request does with the model's harness: `baseUrl` is the harness's, and `sawBytes` is
 * called whenever bytes of its answer reach the client (a streaming harness is alive without a
 * liveness probe).
 */
export type HarnessWork<T> = (baseUrl: string, sawBytes: () => void) => Promise<T>;

/**
 * Runs `work` against the model's harness inside one admission slot: an `unloaded` model is
 * reloaded first, a loading or recovering one is waited for. The slot is released however the
 * work ends; the idle timer restarts when the last request finishes.
 */
export const serve = async <T>(
  entry: ModelEntry,
  signal: Abortable | undefined,
  work: HarnessWork<T>,
  hooks: ServeHooks,
): Promise<T> => {
  const arrivedMs = hooks.now();
  hooks.pauseIdle(entry);
  try {
    return await entry.admission.run(async () => {
      entry.lastAccessedMs = hooks.now();
      // A loaded model (the hot path) goes straight to its harness.
      const url =
        entry.status === "loaded" && entry.harness.url
          ? entry.harness.url
          : await whenLoaded(entry, signal, hooks, arrivedMs);
      try {
        const harness = entry.harness;
        return await work(url, () => harness.sawTraffic());
      } finally {
        entry.lastAccessedMs = hooks.now();
      }
    }, signal);
  } catch (error) {
    if (error instanceof AdmissionError) {
      throw new NeuronError(error.code, `model "${entry.spec.id}": ${error.message}`, {
        retryAfterS: 1,
      });
    }
    throw error;
  } finally {
    hooks.finished(entry);
  }
};

const whenLoaded = async (
  entry: ModelEntry,
  signal: Abortable | undefined,
  hooks: ServeHooks,
  arrivedMs: number,
): Promise<string> => {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    if (entry.status === "loaded" && entry.harness.url) return entry.harness.url;
    if (entry.status === "unloaded" && !entry.loading) {
      const asking = hooks.reload(entry);
      if (asking) await asking;
    }
    if (entry.loading) {
      await hooks.awaitLoad(entry, signal, arrivedMs);
      continue;
    }
    break;
  }
  if (entry.status === "loaded" && entry.harness.url) return entry.harness.url;
  throw new NeuronError(
    "service_unavailable",
    `model "${entry.spec.id}" is ${entry.status}${entry.error ? `: ${entry.error}` : ""}`,
    { retryAfterS: 5 },
  );
};
