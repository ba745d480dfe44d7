import { once } from "node:events";
import { createServer, request, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { silentLog } from "./api-error.js";
import { BodyBudget, readBody } from "./body.js";
import { ClientSignal } from "./client-signal.js";
import { closeAll, closers, closeServer } from "./closers.fixtures.js";
import { failRequest, listen } from "./fast-path.js";
import { pipeBody, post, proxyAgents, targetOf } from "./upstream.js";

// What a client can make a server hold, on loopback with real sockets: bodies (one budget for
// all requests), connections, and an answer nobody reads.

afterEach(closeAll);

const track = (server: Server): string => {
  closers.push(closeServer(server));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** Sends the headers (with `length` declared, or chunked) and `body`, unless `body` is null. */
const send = (
  url: string,
  body: Buffer | null,
  headers: Record<string, string | number> = {},
): { answer: Promise<Answer>; socket: Promise<Socket> } => {
  let gotSocket!: (socket: Socket) => void;
  const socket = new Promise<Socket>((resolve) => {
    gotSocket = resolve;
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    const req = request(`${url}/v1/x`, { method: "POST", agent: false, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (part: Buffer) => parts.push(part));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(parts).toString(),
        }),
      );
    });
    req.on("socket", gotSocket);
    req.on("error", reject);
    if (body === null) req.flushHeaders();
    else req.end(body);
  });
  return { answer, socket };
};

/** A server whose requests read their body into `budget` and wait for `release` to answer. */
const holding = async (budget: BodyBudget) => {
  const waiting: (() => void)[] = [];
  let read = 0;
  const server = await listen(
    (req, res) => {
      readBody(req, 4 * 2 ** 20, budget.charge(res)).then(
        (body) => {
          read += 1;
          waiting.push(() => res.end(String(body.length)));
        },
        (error: unknown) => failRequest(res, error, silentLog),
      );
    },
    0,
    "127.0.0.1",
  );
  return {
    url: track(server),
    reads: () => read,
    releaseAll: () => {
      for (const release of waiting.splice(0)) release();
    },
  };
};

const KiB = 1024;

describe("a body budget shared by every request", () => {
  it("refuses a declared body that would pass it with 503 before reading any of it", async () => {
    const budget = new BodyBudget(1024 * KiB);
    const server = await holding(budget);
    const first = send(server.url, Buffer.alloc(600 * KiB, 0x20), {
      "content-length": 600 * KiB,
    });
    await expect.poll(() => server.reads()).toBe(1);
    expect(budget.used).toBe(600 * KiB);
    // Headers only: the answer comes although not one byte of the body was sent.
    const second = send(server.url, null, { "content-length": 600 * KiB });
    const refused = await second.answer;
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: "overloaded" } });
    (await second.socket).destroy();
    expect(budget.used).toBe(600 * KiB);
    server.releaseAll();
    expect((await first.answer).body).toBe(String(600 * KiB));
    await expect.poll(() => budget.used).toBe(0);
    const third = send(server.url, Buffer.alloc(600 * KiB, 0x20), {
      "content-length": 600 * KiB,
    });
    await expect.poll(() => server.reads()).toBe(2);
    server.releaseAll();
    expect((await third.answer).status).toBe(200);
  });

  it("charges a chunked body as it arrives and refuses it when it passes the budget", async () => {
    const budget = new BodyBudget(1024 * KiB);
    const server = await holding(budget);
    const first = send(server.url, Buffer.alloc(700 * KiB, 0x20));
    await expect.poll(() => server.reads()).toBe(1);
    const second = await send(server.url, Buffer.alloc(700 * KiB, 0x20)).answer;
    expect(second.status).toBe(503);
    // The refused request holds nothing once its answer is out.
    await expect.poll(() => budget.used).toBe(700 * KiB);
    server.releaseAll();
    expect((await first.answer).status).toBe(200);
    await expect.poll(() => budget.used).toBe(0);
  });

  it("gives back what a client that left in the middle of its body held", async () => {
    const budget = new BodyBudget(1024 * KiB);
    const server = await holding(budget);
    const { socket, answer } = send(server.url, null, { "content-length": 800 * KiB });
    answer.catch(() => {});
    await expect.poll(() => budget.used).toBe(800 * KiB);
    (await socket).destroy();
    await expect.poll(() => budget.used).toBe(0);
  });
});

describe("max connections", () => {
  it("answers a request on a connection over the limit with 503 and closes it", async () => {
    const server = await listen((_req, res) => res.end("ok"), 0, "127.0.0.1", {
      maxConnections: 2,
    });
    const url = track(server);
    const { port } = new URL(url);
    const open = async () => {
      const socket = connect(Number(port), "127.0.0.1");
      await once(socket, "connect");
      closers.push(() => {
        socket.destroy();
      });
      return socket;
    };
    const ask = async (socket: Socket) => {
      socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      const [data] = (await once(socket, "data")) as [Buffer];
      return data.toString();
    };
    const a = await open();
    const b = await open();
    expect(await ask(a)).toContain("200 OK");
    const c = await open();
    const refused = await ask(c);
    expect(refused).toContain("503 Service Unavailable");
    expect(refused).toContain("Connection: close");
    expect(refused).toContain('"code":"overloaded"');
    await once(c, "close");
    expect(await ask(b)).toContain("200 OK");
    a.destroy();
    await expect.poll(async () => (await ask(await open())).includes("200 OK")).toBe(true);
  });
});

/** An upstream that streams small chunks until its client goes away; `closed` resolves then. */
const endlessUpstream = async () => {
  let closed!: () => void;
  const gone = new Promise<void>((resolve) => {
    closed = resolve;
  });
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/event-stream" });
    const chunk = `data: ${"x".repeat(1000)}\n\n`;
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once("drain", pump);
    };
    pump();
    res.on("close", closed);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: track(server), closed: gone };
};

/** A proxy hop as cortex and the neuron make it: the client leaving aborts the upstream. */
const proxyTo = async (upstream: string, stallTimeoutMs: number) => {
  const agents = proxyAgents(8);
  closers.push(() => {
    agents.http.destroy();
  });
  const server = await listen(
    (req, res: ServerResponse) => {
      req.resume();
      const signal = new ClientSignal();
      res.on("close", () => {
        if (!res.writableFinished) signal.abort(new Error("client gone"));
      });
      post({
        target: targetOf(upstream),
        path: "/",
        agents,
        headers: {},
        body: "{}",
        signal,
        connectTimeoutMs: 5000,
        idleTimeoutMs: 60_000,
      }).then(
        ({ response }) => {
          res.writeHead(200, { "content-type": "text/event-stream" });
          return pipeBody(response, res, { stallTimeoutMs });
        },
        () => res.destroy(),
      );
    },
    0,
    "127.0.0.1",
  );
  return track(server);
};

describe("a client that stops reading", () => {
  it("is cut after the stall timeout, which ends the upstream request", async () => {
    const upstream = await endlessUpstream();
    const url = await proxyTo(upstream.url, 300);
    const { port } = new URL(url);
    const socket = connect(Number(port), "127.0.0.1");
    closers.push(() => {
      socket.destroy();
    });
    socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    // It never reads: the kernel's buffers fill, then the proxy's, then the stall timer runs.
    socket.pause();
    await upstream.closed;
  });

  // As nginx's send_timeout, progress is what the kernel takes from the server (it wakes a
  // writer only once a good part of its send buffer is free): a client that keeps reading,
  // with pauses shorter than the timeout, is never cut.
  it("is kept while it keeps reading, with pauses shorter than the timeout", async () => {
    const upstream = await endlessUpstream();
    const url = await proxyTo(upstream.url, 1000);
    const { port } = new URL(url);
    const socket = connect(Number(port), "127.0.0.1");
    closers.push(() => {
      socket.destroy();
    });
    let cut = false;
    upstream.closed.then(() => {
      cut = true;
    });
    let taken = 0;
    socket.on("data", (part: Buffer) => {
      taken += part.length;
    });
    socket.write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    for (let round = 0; round < 5; round += 1) {
      socket.pause();
      await new Promise((resolve) => setTimeout(resolve, 500));
      socket.resume();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(taken).toBeGreaterThan(0);
    expect(cut).toBe(false);
    expect(socket.destroyed).toBe(false);
  });
});
