import { ApiError } from "@cortex/http-kit";
import type { Response } from "express";
import type { Engine } from "./engine.js";
import { type Envelope, newId, unixNow } from "./responses.js";
import type { WorkerContext } from "./server.js";

// What every route of the worker shares: the requests in flight (for shutdown), the engine once
// it is ready, a generation tied to its client's connection, and an answer's id and model.

/**
 * In-flight requests, each with an AbortController, so a shutdown can wait for them and then
 * abort the rest. A request leaves the set exactly once, however it ends.
 */
export class InFlight {
  readonly #active = new Set<AbortController>();
  #onIdle: (() => void) | undefined;

  get size(): number {
    return this.#active.size;
  }

  begin(): { signal: AbortSignal; end: () => void } {
    const controller = new AbortController();
    this.#active.add(controller);
    return {
      signal: controller.signal,
      end: () => {
        this.#active.delete(controller);
        if (this.#active.size === 0) this.#onIdle?.();
      },
    };
  }

  /** Resolves when nothing is in flight. */
  idle(): Promise<void> {
    if (this.#active.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onIdle = resolve;
    });
  }

  abortAll(reason: string): void {
    for (const controller of this.#active) controller.abort(new Error(reason));
  }
}

export const readyEngine = (context: WorkerContext): Engine => {
  const engine = context.engine();
  const phase = context.phase();
  if (phase === "ready" && engine) return engine;
  throw new ApiError(
    "service_unavailable",
    phase === "stopping" ? "the model is shutting down" : "the model is still loading",
    { retryAfterS: 1 },
  );
};

/**
 * Runs one generation tied to the client's connection: a client that goes away aborts it,
 * which frees its context sequence for the next request.
 */
export const withConnection = async (
  res: Response,
  inflight: InFlight,
  run: (signal: AbortSignal) => Promise<void>,
): Promise<void> => {
  const { signal, end } = inflight.begin();
  const controller = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) controller.abort(new Error("client disconnected"));
  };
  res.on("close", onClose);
  const both = AbortSignal.any([signal, controller.signal]);
  try {
    await run(both);
  } catch (error) {
    // An aborted generation has nobody to answer (client gone) or is ending by shutdown.
    if (!both.aborted) throw error;
    if (!res.headersSent) {
      throw new ApiError(
        "service_unavailable",
        "the request was aborted: the model is shutting down",
        {
          retryAfterS: 1,
        },
      );
    }
    res.destroy();
  } finally {
    res.off("close", onClose);
    end();
  }
};

export const envelopeFor = (context: WorkerContext, prefix: string): Envelope => ({
  id: newId(prefix),
  created: unixNow(),
  model: context.model,
});
