import type {
  CatalogueReport,
  CatalogueReportModel,
  FleetAnswer,
  FleetEvent,
} from "@cortex/protocol";
import { useEffect, useRef, useState } from "preact/hooks";
import { type AdminClient, describeFailure } from "./api/client.js";
import { followEvents, type StreamState } from "./api/event-stream.js";
import { applyLoadEvent, type LoadsInFlight } from "./lib/load-progress.js";

// The fleet as the dashboard knows it: the snapshot (GET /api/fleet every 2 s and after every
// event, never two requests at once), the catalogue with its memory figures (again after
// catalogue_reloaded, after a load ends, and every CATALOGUE_POLLS polls, since estimates and
// measurements arrive on their own), the live event stream and the loads it reports.

const POLL_MS = 2000;
/** The catalogue is fetched again every this many snapshot polls (20 s). */
const CATALOGUE_POLLS = 10;
const MAX_EVENTS = 500;
/** The first connection replays the feed's backlog from the last hour. */
const REPLAY_MS = 3_600_000;

export interface EventEntry {
  readonly key: string;
  readonly event: FleetEvent;
}

export interface FleetState {
  /** `GET /api/fleet`: the snapshot, each node with its drain. */
  readonly fleet: FleetAnswer | null;
  readonly fleetError: string | null;
  readonly catalogue: readonly CatalogueReportModel[];
  readonly events: readonly EventEntry[];
  readonly loads: LoadsInFlight;
  readonly stream: { readonly state: StreamState; readonly detail: string | null };
  /** Fetches the snapshot now (after the dashboard's own load or unload). */
  readonly refresh: () => void;
}

export const useFleet = (
  client: AdminClient,
  token: string,
  onUnauthorized: (message: string) => void,
): FleetState => {
  const [fleet, setFleet] = useState<FleetAnswer | null>(null);
  const [fleetError, setFleetError] = useState<string | null>(null);
  const [catalogue, setCatalogue] = useState<readonly CatalogueReportModel[]>([]);
  const [events, setEvents] = useState<readonly EventEntry[]>([]);
  const [loads, setLoads] = useState<LoadsInFlight>(new Map());
  const [stream, setStream] = useState<FleetState["stream"]>({
    state: "connecting",
    detail: null,
  });
  const refreshRef = useRef<() => void>(() => {});

  useEffect(() => {
    const stop = new AbortController();
    let inFlight = false;
    let again = false;

    const refresh = (): void => {
      if (stop.signal.aborted) return;
      if (inFlight) {
        again = true;
        return;
      }
      inFlight = true;
      client
        .get<FleetAnswer>("/api/fleet", stop.signal)
        .then((snapshot) => {
          setFleet(snapshot);
          setFleetError(null);
        })
        .catch((error: unknown) => {
          if (!stop.signal.aborted) setFleetError(describeFailure(error));
        })
        .finally(() => {
          inFlight = false;
          if (again) {
            again = false;
            refresh();
          }
        });
    };
    refreshRef.current = refresh;

    const loadCatalogue = (): void => {
      client
        .get<CatalogueReport>("/api/catalogue", stop.signal)
        .then((answer) => setCatalogue(answer.models))
        .catch(() => {
          // The snapshot's error line already says when cortex cannot be reached.
        });
    };

    refresh();
    loadCatalogue();
    let polls = 0;
    const timer = setInterval(() => {
      refresh();
      polls += 1;
      if (polls % CATALOGUE_POLLS === 0) loadCatalogue();
    }, POLL_MS);

    let counter = 0;
    void followEvents({
      token,
      since: new Date(Date.now() - REPLAY_MS).toISOString(),
      signal: stop.signal,
      onState: (state, detail) => setStream({ state, detail: detail ?? null }),
      onUnauthorized,
      onEvent: (event, id) => {
        counter += 1;
        const entry = { key: id ?? `local-${counter}`, event };
        setEvents((list) =>
          list.some((known) => known.key === entry.key)
            ? list
            : [entry, ...list].slice(0, MAX_EVENTS),
        );
        setLoads((current) => applyLoadEvent(current, event));
        if (
          event.type === "catalogue_reloaded" ||
          event.type === "catalogue_problem" ||
          event.type === "load_finished" ||
          event.type === "load_failed"
        )
          loadCatalogue();
        refresh();
      },
    });

    return () => {
      stop.abort();
      clearInterval(timer);
    };
  }, [client, token, onUnauthorized]);

  return {
    fleet,
    fleetError,
    catalogue,
    events,
    loads,
    stream,
    refresh: () => refreshRef.current(),
  };
};
