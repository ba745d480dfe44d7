import type { FleetEvent } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { backoffMs, followEvents, type StreamState } from "./event-stream.js";

const event = (model: string): FleetEvent => ({
  type: "unloaded",
  at: "2025-06-15T12:00:00.000Z",
  node: "gpu-a",
  model,
});

const streamOf = (text: string): Response =>
  new Response(
    new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(text));
        controller.close();
      },
    }),
    { status: 200, headers: { "content-type": "text/event-stream" } },
  );

describe("followEvents", () => {
  it("sends the token, resumes with Last-Event-ID after a drop, and backs off", async () => {
    const stop = new AbortController();
    const requests: { url: string; headers: Record<string, string> }[] = [];
    const answers = [
      () => streamOf(`: hi\n\nid: 41\ndata: ${JSON.stringify(event("a"))}\n\ndata: not json\n\n`),
      () => {
        throw new TypeError("network down");
      },
      () => streamOf(`id: 42\ndata: ${JSON.stringify(event("b"))}\n\n`),
    ];
    const seen: [string, string | null][] = [];
    const states: StreamState[] = [];
    const waits: number[] = [];
    await followEvents({
      token: "secret",
      since: "2025-06-15T11:00:00.000Z",
      signal: stop.signal,
      fetchImpl: async (input, init) => {
        requests.push({ url: String(input), headers: init?.headers as Record<string, string> });
        const answer = answers.shift();
        if (!answer) {
          stop.abort();
          throw new DOMException("aborted", "AbortError");
        }
        return answer();
      },
      sleep: async (ms) => {
        waits.push(ms);
      },
      onEvent: (e, id) => seen.push([e.type === "unloaded" ? e.model : e.type, id]),
      onState: (state) => states.push(state),
      onUnauthorized: () => {
        throw new Error("not expected");
      },
    });
    expect(seen).toEqual([
      ["a", "41"],
      ["b", "42"],
    ]);
    expect(requests[0]?.url).toBe("/api/events?since=2025-06-15T11%3A00%3A00.000Z");
    expect(requests[0]?.headers.authorization).toBe("Bearer secret");
    expect(requests[0]?.headers["last-event-id"]).toBeUndefined();
    expect(requests[1]?.url).toBe("/api/events");
    expect(requests[1]?.headers["last-event-id"]).toBe("41");
    expect(requests[3]?.headers["last-event-id"]).toBe("42");
    // Open resets the backoff; the failed try doubles it.
    expect(waits).toEqual([1000, 2000, 1000]);
    expect(states.slice(0, 3)).toEqual(["connecting", "open", "retrying"]);
  });

  it("stops for good on 401 and reports the server's message", async () => {
    const messages: string[] = [];
    let calls = 0;
    await followEvents({
      token: "wrong",
      signal: new AbortController().signal,
      fetchImpl: async () => {
        calls += 1;
        return new Response(
          JSON.stringify({
            error: { message: "missing or wrong bearer token", code: "invalid_api_key" },
          }),
          { status: 401 },
        );
      },
      onEvent: () => {},
      onState: () => {},
      onUnauthorized: (message) => messages.push(message),
    });
    expect(calls).toBe(1);
    expect(messages).toEqual(["missing or wrong bearer token"]);
  });

  it.each([
    [0, 1000],
    [1, 2000],
    [4, 16_000],
    [5, 30_000],
    [40, 30_000],
  ])("waits backoffMs(%i) = %i", (attempt, ms) => {
    expect(backoffMs(attempt)).toBe(ms);
  });
});
