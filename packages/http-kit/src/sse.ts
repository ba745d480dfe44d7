import type { ServerResponse } from "node:http";

/** The headers of every server-sent event stream the servers send (no proxy buffering). */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
};

/** Sends a 200 with the event-stream headers at once (express's Response is a ServerResponse). */
export const startEventStream = (res: ServerResponse): void => {
  res.writeHead(200, SSE_HEADERS);
  res.flushHeaders();
};

/** Starts a server-sent event stream; `send` writes one named event with a JSON payload. */
export const openEventStream = (res: ServerResponse) => {
  startEventStream(res);
  return {
    send: (event: string, data: unknown) => {
      if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    end: () => {
      if (!res.writableEnded) res.end();
    },
  };
};
