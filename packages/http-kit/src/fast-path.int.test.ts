import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, closers, closeServer, echo, send, start } from "./fast-path.fixtures.js";
import { isInference, listen, pathOf } from "./fast-path.js";

// The fast path's routing on loopback: which requests the fast handler gets and which go to the
// rest, and listen. The error envelope: fast-path-envelope.int.test.ts; reading bodies:
// fast-path-body.int.test.ts.

afterEach(closeAll);

describe("pathOf", () => {
  it.each([
    ["/v1/chat/completions", "/v1/chat/completions"],
    ["/v1/chat/completions?stream=true", "/v1/chat/completions"],
    ["/v1/models?a=1?b=2", "/v1/models"],
    ["/v1/embeddings?", "/v1/embeddings"],
    ["/?x", "/"],
    ["?only=query", ""],
    ["/v1/", "/v1/"],
    [undefined, "/"],
  ])("%s is %s", (url, path) => {
    expect(pathOf(url)).toBe(path);
  });
});

describe("isInference", () => {
  const message = (method: string, url: string | undefined) => ({ method, url }) as IncomingMessage;

  it.each([
    ["POST", "/v1/chat/completions", true],
    ["POST", "/v1/completions?stream=true", true],
    ["POST", "/v1/x", true],
    ["POST", "/v1/", false],
    ["POST", "/v1", false],
    ["POST", "/v1?x=1", false],
    ["POST", "/v1/?x=1", false],
    ["POST", "/v10/chat/completions", false],
    ["POST", "/v2/chat/completions", false],
    ["POST", "/admin/v1/x", false],
    ["POST", "/", false],
    ["GET", "/v1/models", false],
    ["PUT", "/v1/chat/completions", false],
    ["post", "/v1/chat/completions", false],
    ["POST", undefined, false],
  ])("%s %s → %s", (method, url, expected) => {
    expect(isInference(message(method, url))).toBe(expected);
  });
});

describe("withFastPath", () => {
  it("sends what `take` accepts to the fast handler and everything else to the rest", async () => {
    const { handler } = echo(1024);
    const { url } = await start(handler);
    const fast = await send(`${url}/v1/chat/completions`, ['{"model":"m"}']);
    expect(fast.headers["x-served-by"]).toBe("fast");
    expect(JSON.parse(fast.body)).toEqual({ length: 13, text: '{"model":"m"}' });
    const models = await fetch(`${url}/v1/models`);
    expect(models.headers.get("x-served-by")).toBe("rest");
    expect(await models.text()).toBe("rest GET /v1/models");
    expect((await send(`${url}/v1/`, ["{}"])).body).toBe("rest POST /v1/");
    expect((await send(`${url}/health`, ["{}"])).body).toBe("rest POST /health");
  });

  it("asks `take` about every request, with the request itself", async () => {
    const asked: string[] = [];
    const { url } = await start(
      async (_req, res) => {
        res.end("fast");
      },
      (req) => {
        asked.push(`${req.method} ${req.url}`);
        return req.headers["x-fast"] === "yes";
      },
    );
    expect(await (await fetch(`${url}/a`, { headers: { "x-fast": "yes" } })).text()).toBe("fast");
    expect(await (await fetch(`${url}/b`)).text()).toBe("rest GET /b");
    expect(asked).toEqual(["GET /a", "GET /b"]);
  });
});

describe("listen", () => {
  it("resolves once the server listens, on the port asked for", async () => {
    const first = await listen((_req, res) => res.end("hi"), 0, "127.0.0.1");
    closers.push(closeServer(first));
    const { port } = first.address() as AddressInfo;
    expect(first.listening).toBe(true);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("hi");
  });

  it("rejects when the port is taken", async () => {
    const first = await listen((_req, res) => res.end(), 0, "127.0.0.1");
    closers.push(closeServer(first));
    const { port } = first.address() as AddressInfo;
    await expect(listen((_req, res) => res.end(), port, "127.0.0.1")).rejects.toMatchObject({
      code: "EADDRINUSE",
    });
  });
});
