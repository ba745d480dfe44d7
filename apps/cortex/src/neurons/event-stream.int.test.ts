import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { type FakeNeuron, neuronModel, startFakeNeuron } from "@cortex/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { type EventStreamEnd, MAX_EVENT_MESSAGE_CHARS, openEventStream } from "./event-stream.js";
import { NeuronClient } from "./neuron-client.js";

// The transport of a neuron's `GET /events` against real servers on loopback: what it reports
// for a stream, a 404, a refusal, a dropped connection, an oversized message and its own close.

let closers: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const close of closers.reverse()) await close();
  closers = [];
});

/** A server whose `/events` the test answers by hand. */
const serve = async (handle: (res: ServerResponse, auth: string | undefined) => void) => {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => handle(res, req.headers.authorization));
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

const recorder = () => {
  const seen: string[] = [];
  let ended: EventStreamEnd | null = null;
  let alive = 0;
  const handlers = {
    opened: () => seen.push("opened"),
    alive: () => {
      alive += 1;
    },
    message: (event: string, data: string) => seen.push(`${event} ${data}`),
    ended: (end: EventStreamEnd) => {
      seen.push(`ended ${end.kind}`);
      ended = end;
    },
  };
  return {
    handlers,
    seen,
    get ended() {
      return ended;
    },
    get alive() {
      return alive;
    },
  };
};

const SSE = { "content-type": "text/event-stream" };

describe("openEventStream", () => {
  it("reads messages cut anywhere, with the token, and says when the neuron ends the stream", async () => {
    let auth: string | undefined;
    let respond: ServerResponse | undefined;
    const url = await serve((res, given) => {
      auth = given;
      respond = res;
      res.writeHead(200, SSE);
      res.write("id: 1\nevent: snap");
      setTimeout(() => res.write('shot\ndata: []\n\nevent: model\ndata: {"id":"m"}\n\n'), 20);
    });
    const r = recorder();
    const stream = openEventStream(url, "tok", r.handlers);
    closers.push(async () => stream.close());
    await expect.poll(() => r.seen.length).toBe(3);
    expect(auth).toBe("Bearer tok");
    expect(r.seen).toEqual(["opened", "snapshot []", 'model {"id":"m"}']);
    expect(r.alive).toBeGreaterThanOrEqual(2);
    respond?.end();
    await expect.poll(() => r.ended).toEqual({ kind: "dropped", why: "the stream ended" });
  });

  it.each([
    [404, { kind: "absent" }],
    [401, { kind: "refused", status: 401 }],
    [503, { kind: "refused", status: 503 }],
  ])("reports HTTP %i as %j", async (status, expected) => {
    const url = await serve((res) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end('{"error":{"message":"no"}}');
    });
    const r = recorder();
    openEventStream(url, "", r.handlers);
    await expect.poll(() => r.ended).toEqual(expected);
    expect(r.seen).toEqual([`ended ${expected.kind}`]);
  });

  it("refuses a 200 that is not an event stream", async () => {
    const url = await serve((res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end("[]");
    });
    const r = recorder();
    openEventStream(url, "", r.handlers);
    await expect.poll(() => r.ended).toEqual({ kind: "refused", status: 200 });
  });

  it("reports a refused connection as dropped", async () => {
    const url = await serve(() => {});
    // Closed again at once: the port is free, so connecting is refused.
    for (const close of closers.splice(0)) await close();
    const r = recorder();
    openEventStream(url, "", r.handlers);
    await expect.poll(() => r.ended).toEqual({ kind: "dropped", why: "connection refused" });
  });

  it("drops a stream whose message never ends, past the bound", async () => {
    const url = await serve((res) => {
      res.writeHead(200, SSE);
      const chunk = `data: ${"x".repeat(1024 * 1024)}`;
      let sent = 0;
      const more = () => {
        while (sent <= MAX_EVENT_MESSAGE_CHARS / chunk.length + 1) {
          sent += 1;
          if (!res.write(chunk)) {
            res.once("drain", more);
            return;
          }
        }
      };
      more();
    });
    const r = recorder();
    openEventStream(url, "", r.handlers);
    await expect
      .poll(() => r.ended, { timeout: 10_000 })
      .toEqual({
        kind: "dropped",
        why: `a message longer than ${MAX_EVENT_MESSAGE_CHARS} characters`,
      });
  });

  it("calls nothing after its own close", async () => {
    const url = await serve((res) => {
      res.writeHead(200, SSE);
      res.write("event: heartbeat\ndata: {}\n\n");
    });
    const r = recorder();
    const stream = openEventStream(url, "", r.handlers);
    await expect.poll(() => r.seen.length).toBe(2);
    stream.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.seen).toEqual(["opened", "heartbeat {}"]);
  });

  it("streams the testkit fake neuron's changes through NeuronClient.events", async () => {
    const neuron: FakeNeuron = await startFakeNeuron({
      name: "a",
      token: "secret",
      models: [neuronModel("m1", { status: "loaded" })],
    });
    closers.push(() => neuron.close());
    const r = recorder();
    const client = new NeuronClient({
      name: "a",
      url: neuron.url,
      token: "secret",
      timeoutMs: 1000,
    });
    const stream = client.events(r.handlers);
    closers.push(async () => stream.close());
    await expect.poll(() => r.seen.some((line) => line.startsWith("snapshot "))).toBe(true);
    neuron.setModelStatus("m1", "unloaded");
    await expect
      .poll(() => r.seen.some((line) => line.startsWith("model ") && line.includes('"unloaded"')))
      .toBe(true);
    await neuron.kill();
    await expect.poll(() => r.ended?.kind).toBe("dropped");
  });
});
