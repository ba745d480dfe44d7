import type { FleetEvent } from "@cortex/protocol";
import { formatMb, formatMs } from "./format.js";

// One line per fleet event for the Events view.

export type EventTone = "good" | "bad" | "warn" | "info";

export interface EventText {
  readonly title: string;
  readonly detail: string;
  readonly tone: EventTone;
}

export const describeEvent = (event: FleetEvent): EventText => {
  switch (event.type) {
    case "node_health":
      return event.healthy
        ? { title: "node healthy", detail: "answering polls", tone: "good" }
        : { title: "node unhealthy", detail: event.error ?? "polls fail", tone: "bad" };
    case "model_state":
      return {
        title: "state",
        detail: `${event.from ?? "absent"} → ${event.to ?? "gone"}`,
        tone: event.to === "failed" ? "bad" : event.to === "loaded" ? "good" : "info",
      };
    case "load_started":
      return {
        title: "load started",
        detail:
          event.evicting.length > 0
            ? `evicting ${event.evicting.map((e) => `${e.model} on ${e.node}`).join(", ")}`
            : "",
        tone: "info",
      };
    case "load_progress":
      return {
        title: "loading",
        detail:
          event.bytes !== null && event.total !== null
            ? `${event.phase} ${formatMb(event.bytes / 1_048_576)} of ${formatMb(event.total / 1_048_576)}`
            : event.phase,
        tone: "info",
      };
    case "load_finished":
      return { title: "loaded", detail: `in ${formatMs(event.load_ms)}`, tone: "good" };
    case "load_failed":
      return { title: "load failed", detail: event.error, tone: "bad" };
    case "evicted":
      return { title: "evicted", detail: "to make room for another model", tone: "warn" };
    case "unloaded":
      return { title: "unloaded", detail: "", tone: "info" };
    case "scaled_out":
      return {
        title: "scaled out",
        detail: `${event.reason === "demand" ? "requests waiting" : "min_replicas"}; ${event.replicas} replica(s)`,
        tone: "info",
      };
    case "scaled_in":
      return {
        title: "scaled in",
        detail: `idle; ${event.replicas} replica(s) left`,
        tone: "info",
      };
    case "swap_queued":
      return {
        title: "swap queued",
        detail: `waits for ${event.blockers.join(", ") || "room"} to go`,
        tone: "warn",
      };
    case "swap_started":
      return {
        title: "swap started",
        detail: `${event.evicting.length > 0 ? `evicting ${event.evicting.join(", ")}; ` : ""}${event.waiting} request(s) waited ${formatMs(event.waited_ms)}`,
        tone: "info",
      };
    case "catalogue_reloaded":
      return event.error === null
        ? { title: "catalogue reloaded", detail: `${event.models} models`, tone: "info" }
        : { title: "catalogue edit refused", detail: event.error, tone: "bad" };
    case "catalogue_problem":
      return { title: "catalogue entry cannot be placed", detail: event.error, tone: "bad" };
    case "node_draining":
      return {
        title: "node draining",
        detail: "no new requests; its models unload once idle",
        tone: "warn",
      };
    case "node_drained":
      return { title: "node drained", detail: "nothing resident", tone: "info" };
    case "node_resumed":
      return { title: "node resumed", detail: "back in service", tone: "good" };
    case "node_joined":
      return { title: "node joined", detail: `reached at ${event.url}`, tone: "good" };
    case "node_removed":
      return { title: "node removed", detail: "left the fleet; no longer polled", tone: "info" };
  }
};

/** Node and model of an event, where it has them. */
export const subjectOf = (event: FleetEvent): { node: string | null; model: string | null } => ({
  node: "node" in event ? event.node : null,
  model: "model" in event ? event.model : null,
});
