import type { FleetEvent } from "@cortex/protocol";

// Loads under way, from the event stream: started, progress (phase, bytes of total), then
// finished (dropped) or failed (kept, with the error, until the next load of that model).

export interface LoadProgress {
  readonly model: string;
  readonly node: string;
  readonly phase: string;
  readonly bytes: number | null;
  readonly total: number | null;
  readonly startedAt: string;
  readonly error: string | null;
}

export type LoadsInFlight = ReadonlyMap<string, LoadProgress>;

const keyOf = (model: string, node: string): string => `${model}@${node}`;

export const applyLoadEvent = (loads: LoadsInFlight, event: FleetEvent): LoadsInFlight => {
  switch (event.type) {
    case "load_started": {
      const next = new Map(loads);
      next.set(keyOf(event.model, event.node), {
        model: event.model,
        node: event.node,
        phase: event.evicting.length > 0 ? "evicting" : "queued",
        bytes: null,
        total: null,
        startedAt: event.at,
        error: null,
      });
      return next;
    }
    case "load_progress": {
      const key = keyOf(event.model, event.node);
      const known = loads.get(key);
      const next = new Map(loads);
      next.set(key, {
        model: event.model,
        node: event.node,
        phase: event.phase,
        bytes: event.bytes,
        total: event.total,
        startedAt: known?.startedAt ?? event.at,
        error: null,
      });
      return next;
    }
    case "load_finished": {
      const next = new Map(loads);
      next.delete(keyOf(event.model, event.node));
      return next;
    }
    case "load_failed": {
      const key = keyOf(event.model, event.node);
      const known = loads.get(key);
      const next = new Map(loads);
      next.set(key, {
        model: event.model,
        node: event.node,
        phase: "failed",
        bytes: known?.bytes ?? null,
        total: known?.total ?? null,
        startedAt: known?.startedAt ?? event.at,
        error: event.error,
      });
      return next;
    }
    default:
      return loads;
  }
};

/** The loads of one model (any node). */
export const loadsOf = (loads: LoadsInFlight, model: string): LoadProgress[] =>
  [...loads.values()].filter((load) => load.model === model);

/** Percent done when the size is known, else null (the bar then shows the phase only). */
export const percentDone = (load: LoadProgress): number | null =>
  load.bytes !== null && load.total !== null && load.total > 0
    ? Math.min(100, Math.round((load.bytes / load.total) * 100))
    : load.phase === "ready"
      ? 100
      : null;
