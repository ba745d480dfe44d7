import type { FleetEvent } from "@cortex/protocol";
import { useState } from "preact/hooks";
import { describeEvent, subjectOf } from "../lib/event-text.js";
import { formatClock } from "../lib/format.js";
import type { EventEntry } from "../use-fleet.js";

const KINDS: Record<string, readonly FleetEvent["type"][]> = {
  "all events": [],
  loads: ["load_started", "load_progress", "load_finished", "load_failed"],
  "state changes": ["model_state", "evicted", "unloaded"],
  "node health": ["node_health"],
  drains: ["node_draining", "node_drained", "node_resumed"],
  membership: ["node_joined", "node_removed"],
  catalogue: ["catalogue_reloaded", "catalogue_problem"],
};

/** The live `/api/events` stream, newest first. */
export const EventsView = ({ events }: { events: readonly EventEntry[] }) => {
  const [kind, setKind] = useState("all events");
  const [hideProgress, setHideProgress] = useState(true);
  const types = KINDS[kind] ?? [];
  const shown = events.filter(
    ({ event }) =>
      (types.length === 0 || types.includes(event.type)) &&
      !(hideProgress && kind !== "loads" && event.type === "load_progress"),
  );
  return (
    <section aria-label="Events">
      <div class="toolbar">
        <label>
          Show{" "}
          <select value={kind} onChange={(event) => setKind(event.currentTarget.value)}>
            {Object.keys(KINDS).map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <label class="check">
          <input
            type="checkbox"
            checked={hideProgress}
            onChange={(event) => setHideProgress(event.currentTarget.checked)}
          />
          hide load progress steps
        </label>
        <span class="small muted">
          {events.length} events this session (the last hour's backlog, then live)
        </span>
      </div>
      {shown.length === 0 ? (
        <p class="muted">No events yet: loads, evictions and health changes appear here live.</p>
      ) : (
        <ol class="events card" data-testid="event-list" aria-live="polite">
          {shown.map((entry) => (
            <EventItem key={entry.key} entry={entry} />
          ))}
        </ol>
      )}
    </section>
  );
};

export const EventItem = ({ entry }: { entry: EventEntry }) => {
  const { event } = entry;
  const text = describeEvent(event);
  const { node, model } = subjectOf(event);
  return (
    <li class="event" data-testid="event" data-type={event.type}>
      <time class="muted small" dateTime={event.at}>
        {formatClock(event.at)}
      </time>
      <span class={`pill pill-${text.tone}`}>{text.title}</span>
      <span class="event-subject">
        {model !== null && <strong>{model}</strong>}
        {model !== null && node !== null && <span class="muted"> on </span>}
        {node !== null && <span>{node}</span>}
      </span>
      <span class="event-detail small">{text.detail}</span>
    </li>
  );
};
