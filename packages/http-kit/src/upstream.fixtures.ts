import { once } from "node:events";
import {
  createServer,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { deferred } from "@cortex/testkit";
import { expect } from "vitest";
import { closers } from "./closers.fixtures.js";
import {
  type PipeOptions,
  type ProxyAgents,
  passHeaders,
  pipeBody,
  post,
  proxyAgents,
  targetOf,
  type UpstreamAnswer,
  UpstreamFailure,
  type UpstreamRequest,
} from "./upstream.js";

// The client half of a proxy hop against real servers on loopback: an upstream whose handler
// decides everything (answer, stall, reset), and for pipeBody a relay in between that does what
// apps/*/src/proxy/forward.ts does, so both of its sides are real sockets.

export { closeAll, closers } from "./closers.fixtures.js";

/** A server whose handler decides everything; keeps its sockets to cut them and to close. */
export const serve = async (
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  host = "127.0.0.1",
) => {
  const server: Server = createServer(handler);
  const sockets: Socket[] = [];
  server.on("connection", (socket: Socket) => sockets.push(socket));
  server.listen(0, host);
  await once(server, "listening");
  closers.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`, sockets, port };
};

export const agentsFor = (maxSockets = 8): ProxyAgents => {
  const agents = proxyAgents(maxSockets);
  closers.push(() => {
    agents.http.destroy();
    agents.https.destroy();
  });
  return agents;
};

export const BODY = JSON.stringify({
  model: "m",
  messages: [{ role: "user", content: "héllo ☃" }],
});

export const send = (
  url: string,
  agents: ProxyAgents,
  options: Partial<UpstreamRequest> = {},
): Promise<UpstreamAnswer> =>
  post({
    target: targetOf(url),
    path: "/v1/chat/completions",
    agents,
    headers: { "content-type": "application/json" },
    body: BODY,
    signal: new AbortController().signal,
    connectTimeoutMs: 5000,
    idleTimeoutMs: 10_000,
    ...options,
  });

/** What a promise rejected with (fails the test when it resolved). */
export const rejection = async (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => expect.fail("expected a rejection"),
    (error: unknown) => error,
  );

export const failure = async (promise: Promise<unknown>): Promise<UpstreamFailure> => {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(UpstreamFailure);
  return error as UpstreamFailure;
};

export const text = async (stream: IncomingMessage): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
};

/** A plain client call to the relay, without a pooled agent. */
export const call = (url: string): Promise<IncomingMessage> =>
  new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", agent: false }, resolve);
    req.on("error", reject);
    closers.push(() => {
      req.destroy();
    });
    req.end("{}");
  });

/**
 * A relay in front of `upstreamUrl` that does what forward.ts does: post, pass the head on, pipe
 * the body (cutting the client's connection when it broke off). `piped` is pipeBody's result.
 */
export const relay = async (
  upstreamUrl: string,
  options: {
    pipe?: (answer: UpstreamAnswer, res: ServerResponse) => PipeOptions;
    idleTimeoutMs?: number;
    signal?: AbortSignal;
  } = {},
) => {
  const agents = agentsFor();
  const piped = deferred<boolean>();
  const answered = deferred<UpstreamAnswer>();
  const { url } = await serve((req, res) => {
    req.resume();
    send(upstreamUrl, agents, {
      path: req.url ?? "/",
      signal: options.signal ?? new AbortController().signal,
      idleTimeoutMs: options.idleTimeoutMs ?? 10_000,
    }).then(async (answer) => {
      answered.resolve(answer);
      const { response } = answer;
      res.writeHead(
        response.statusCode ?? 502,
        passHeaders(response, ["content-type", "content-length"]),
      );
      const complete = await pipeBody(response, res, {
        flushHeaders: response.headers["content-length"] === undefined,
        ...options.pipe?.(answer, res),
      });
      if (!complete) res.destroy();
      piped.resolve(complete);
    }, piped.reject);
  });
  return { url, piped: piped.promise, answered: answered.promise };
};
