import { once } from "node:events";
import { Agent, createServer, request, type Server, type ServerResponse } from "node:http";
import { connect } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { drainServer, trackFreshConnections } from "./shutdown.js";

// drainServer against a real server on loopback, with a keep-alive client like cortex's agents.

let server: Server | undefined;
let agent: Agent | undefined;
const held: ServerResponse[] = [];

afterEach(async () => {
  agent?.destroy();
  server?.closeAllConnections();
  if (server?.listening) await new Promise((resolve) => server?.close(resolve));
  held.length = 0;
});

/** How long a loopback request may take to arrive (vi.waitUntil's default 1 s is tight on CI). */
const WAIT = { timeout: 10_000, interval: 5 };

/** A server that holds `/hold` requests until the test answers them, and answers others at once. */
const start = async (): Promise<string> => {
  server = createServer((req, res) => {
    if (req.url === "/hold") held.push(res);
    else res.end("quick");
  });
  server.keepAliveTimeout = 65_000;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  agent = new Agent({ keepAlive: true });
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
};

/** GET with the keep-alive agent: the body and the Connection header, or the error. */
const get = (url: string) =>
  new Promise<{ body: string; connection: string | undefined } | { error: string }>((resolve) => {
    const req = request(url, { agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ body, connection: res.headers.connection }));
      res.on("error", (error) => resolve({ error: error.message }));
    });
    req.on("error", (error: NodeJS.ErrnoException) =>
      resolve({ error: error.code ?? error.message }),
    );
    req.end();
  });

describe("drainServer", () => {
  it("lets a request in flight finish, then closes its keep-alive connection at once", async () => {
    const url = await start();
    expect(await get(`${url}/`)).toMatchObject({ body: "quick" }); // an idle pooled connection
    const answer = get(`${url}/hold`);
    await vi.waitUntil(() => held.length === 1, WAIT);
    const started = Date.now();
    const drain = drainServer(server as Server, 60_000);
    held[0]?.end("finished");
    expect(await answer).toMatchObject({ body: "finished" });
    await drain.closed;
    // Far sooner than the grace or keepAliveTimeout (65 s).
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("cuts a request that never finishes when the grace ends", async () => {
    const url = await start();
    const answer = get(`${url}/hold`);
    await vi.waitUntil(() => held.length === 1, WAIT);
    const started = Date.now();
    const drain = drainServer(server as Server, 200);
    await drain.closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(await answer).toMatchObject({ error: expect.any(String) });
  });

  it("cut() ends the grace early", async () => {
    const url = await start();
    const answer = get(`${url}/hold`);
    await vi.waitUntil(() => held.length === 1, WAIT);
    const drain = drainServer(server as Server, 60_000);
    drain.cut();
    await drain.closed;
    expect(await answer).toMatchObject({ error: expect.any(String) });
  });

  it("answers a request that arrives on an open connection during the grace with Connection: close", async () => {
    const url = await start();
    const socket = connect(Number(new URL(url).port), "127.0.0.1");
    await once(socket, "connect");
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
    });
    socket.write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    await vi.waitUntil(() => held.length === 1, WAIT);
    // No periodic idle check here: only the answer's header can end the connection.
    const drain = drainServer(server as Server, 60_000, 3_600_000);
    held[0]?.end("first");
    await vi.waitUntil(() => received.includes("first"), WAIT);
    expect(received).toMatch(/connection: keep-alive/i);
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await once(socket, "close");
    expect(received.slice(received.indexOf("first"))).toMatch(/connection: close[\s\S]*quick$/i);
    await drain.closed;
  });

  it("closes a connection that never sent a request, when tracked, instead of waiting the grace out", async () => {
    const url = await start();
    trackFreshConnections(server as Server);
    const port = Number(new URL(url).port);
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    // The server sees the connection before the stop begins.
    await new Promise((resolve) => setImmediate(resolve));
    const drain = drainServer(server as Server, 600_000);
    await once(socket, "close");
    await drain.closed;
  });

  it("without tracking, such a connection holds the drain until cut", async () => {
    const url = await start();
    const socket = connect(Number(new URL(url).port), "127.0.0.1");
    await once(socket, "connect");
    await new Promise((resolve) => setImmediate(resolve));
    const drain = drainServer(server as Server, 600_000);
    let closed = false;
    void drain.closed.then(() => {
      closed = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(closed).toBe(false);
    drain.cut();
    await drain.closed;
    socket.destroy();
  });
});
