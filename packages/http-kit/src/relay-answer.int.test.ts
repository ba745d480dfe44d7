import { afterEach, describe, expect, it } from "vitest";
import { agentsFor, call, closeAll, send, serve, text } from "./upstream.fixtures.js";
import { relayAnswer } from "./upstream.js";

// relayAnswer between real sockets: an upstream answering with its own headers, and a relay
// that already set one of its own before passing the answer on whole.

afterEach(closeAll);

describe("relayAnswer", () => {
  it("passes status, headers (but hop-by-hop, cookies and the dropped) and body; keeps the relay's own", async () => {
    const upstream = await serve((req, res) => {
      req.resume();
      res.writeHead(201, {
        "content-type": "text/html",
        "set-cookie": "a=1",
        "x-harness": "llama.cpp",
        "x-secret": "no",
        connection: "x-hop",
        "x-hop": "1",
      });
      res.end("<p>hi</p>");
    });
    const agents = agentsFor();
    let chunks = 0;
    const relay = await serve((req, res) => {
      req.resume();
      res.setHeader("x-request-id", "relay-1");
      void send(upstream.url, agents, {
        path: "/",
        signal: new AbortController().signal,
        idleTimeoutMs: 5000,
      }).then(({ response }) =>
        relayAnswer(response, res, {
          stallTimeoutMs: 5000,
          dropped: (name) => name === "x-secret",
          onChunk: () => {
            chunks += 1;
          },
        }),
      );
    });
    const answer = await call(relay.url);
    expect(answer.statusCode).toBe(201);
    expect(answer.headers).toMatchObject({
      "content-type": "text/html",
      "x-harness": "llama.cpp",
      "x-request-id": "relay-1",
    });
    for (const name of ["set-cookie", "x-secret", "x-hop"])
      expect(answer.headers[name], name).toBeUndefined();
    expect(await text(answer)).toBe("<p>hi</p>");
    expect(chunks).toBeGreaterThan(0);
  });
});
