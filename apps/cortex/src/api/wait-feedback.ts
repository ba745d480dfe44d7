import type { ServerResponse } from "node:http";
import { SSE_HEADERS } from "@cortex/http-kit";
import type { FleetEvent } from "@cortex/protocol";

/** The latest load progress per model, from the fleet's events (one subscription for all). */
export class LoadProgressBoard {
  readonly #latest = new Map<
    string,
    { phase: string; bytes: number | null; total: number | null }
  >();

  readonly listener = (event: FleetEvent): void => {
    if (event.type === "load_progress") this.#latest.set(event.model, event);
    else if (event.type === "load_started")
      this.#latest.set(event.model, { phase: "queued", bytes: null, total: null });
    else if (event.type === "load_finished" || event.type === "load_failed")
      this.#latest.delete(event.model);
  };

  /** `loading <model> 40%`, `loading <model> (starting)`, or null when no load runs. */
  describe(model: string): string | null {
    const progress = this.#latest.get(model);
    if (!progress) return null;
    if (progress.bytes !== null && progress.total)
      return `loading ${model} ${Math.floor((progress.bytes / progress.total) * 100)}%`;
    return `loading ${model} (${progress.phase})`;
  }
}

/**
 * Keeps a streaming client's connection visibly alive while its request waits for a cold load
 * or a free slot: after `everyMs` without an answer it starts the event stream (200) and writes
 * an SSE comment (`: loading tiny 40%`) every `everyMs`. SSE clients ignore comments; proxies
 * with idle timeouts see bytes. Nothing is written for a request that is answered in time.
 */
export class WaitFeedback {
  readonly #res: ServerResponse;
  readonly #describe: () => string;
  readonly #timer: NodeJS.Timeout;
  #started = false;

  constructor(res: ServerResponse, describe: () => string, everyMs = 1000) {
    this.#res = res;
    this.#describe = describe;
    this.#timer = setInterval(() => this.#tick(), everyMs);
    this.#timer.unref();
  }

  /** Whether the stream was started here (so status and headers are already sent). */
  get started(): boolean {
    return this.#started;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    const res = this.#res;
    if (res.writableEnded || res.destroyed) {
      this.stop();
      return;
    }
    if (!res.headersSent) {
      res.writeHead(200, SSE_HEADERS);
      this.#started = true;
    }
    res.write(`: ${this.#describe()}\n\n`);
  }
}
