import { once } from "node:events";
import { get, type IncomingMessage } from "node:http";
import { FleetEvent } from "@cortex/protocol";

/** Cortex's event stream as a test reads it: every event so far, by type, until closed. */
export interface EventRecorder {
  readonly events: readonly FleetEvent[];
  readonly of: <T extends FleetEvent["type"]>(type: T) => Extract<FleetEvent, { type: T }>[];
  /** Ends the stream. `of` and `close` throw once an event did not match the contract. */
  readonly close: () => Promise<void>;
}

/**
 * Follows `GET /api/events` of the cortex at `url` (replaying what its backlog holds from
 * `since` on), parsing each `data:` message with the protocol's FleetEvent schema. It uses its
 * own connection (no pool): an aborted fetch left undici opening a fresh, empty connection,
 * which held cortex's stop for its whole shutdown grace.
 */
export const recordEvents = async (
  url: string,
  token: string,
  since: Date,
): Promise<EventRecorder> => {
  const request = get(`${url}/api/events?since=${encodeURIComponent(since.toISOString())}`, {
    headers: { authorization: `Bearer ${token}` },
    agent: false,
  });
  const [response] = (await once(request, "response")) as [IncomingMessage];
  if (response.statusCode !== 200) {
    request.destroy();
    throw new Error(`GET /api/events answered ${response.statusCode}`);
  }
  const events: FleetEvent[] = [];
  let failure: unknown;
  let buffer = "";
  response.setEncoding("utf8");
  response.on("data", (chunk: string) => {
    buffer += chunk;
    try {
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        for (const line of buffer.slice(0, end).split("\n"))
          if (line.startsWith("data: ")) events.push(FleetEvent.parse(JSON.parse(line.slice(6))));
        buffer = buffer.slice(end + 2);
      }
    } catch (error) {
      failure ??= error;
    }
  });
  // Ends when closed or when cortex stops; neither is a failure of the stream's content.
  response.on("error", () => {});
  request.on("error", () => {});
  const check = (): void => {
    if (failure !== undefined) throw failure;
  };
  return {
    events,
    of: <T extends FleetEvent["type"]>(type: T) => {
      check();
      return events.filter(
        (event): event is Extract<FleetEvent, { type: T }> => event.type === type,
      );
    },
    close: async () => {
      if (!response.destroyed) {
        const closed = new Promise((resolve) => response.once("close", resolve));
        request.destroy();
        await closed;
      }
      check();
    },
  };
};
