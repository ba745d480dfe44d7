import { once } from "node:events";
import { type IncomingMessage, request, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { deferred } from "@cortex/testkit";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError } from "./api-error.js";
import { readBody } from "./body.js";
import {
  type FastHandler,
  failRequest,
  isInference,
  listen,
  pathOf,
  withFastPath,
} from "./fast-path.js";

// The plain node:http inference path on loopback: routing between the fast handler and the rest,
// the error envelope it answers failures with, and reading bodies from real (and misbehaving)
// clients.

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const logSpy = () => ({ info: vi.fn(), warn: vi.fn(), error: vi.fn() });

const closeServer = (server: Server) => () => {
  server.closeAllConnections();
  return new Promise<void>((resolve) => server.close(() => resolve()));
};

/** The fast path in front of a stand-in for the express app, listening on loopback. */
const start = async (fast: FastHandler, take = isInference) => {
  const log = logSpy();
  const server = await listen(
    withFastPath(
      take,
      fast,
      (req, res) => {
        req.resume();
        res.setHeader("x-served-by", "rest");
        res.end(`rest ${req.method} ${req.url}`);
      },
      log,
    ),
    0,
    "127.0.0.1",
  );
  closers.push(closeServer(server));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, log };
};

/** A fast handler that echoes what readBody gave it; `failed` has what readBody threw. */
const echo = (limitBytes: number) => {
  const failed = deferred<{ error: unknown; flowing: boolean | null }>();
  const handler: FastHandler = async (req, res) => {
    let body: Buffer;
    try {
      body = await readBody(req, limitBytes);
    } catch (error) {
      failed.resolve({ error, flowing: req.readableFlowing });
      throw error;
    }
    res.setHeader("x-served-by", "fast");
    res.end(JSON.stringify({ length: body.length, text: body.toString("utf8") }));
  };
  return { handler, failed: failed.promise };
};

interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}

/** A POST with the body in `chunks` (chunked unless a content-length is given). */
const send = (
  url: string,
  chunks: readonly (string | Buffer)[],
  headers: Record<string, string | number> = {},
): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", agent: false, headers }, (response) => {
      const parts: Buffer[] = [];
      response.on("data", (part: Buffer) => parts.push(part));
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(parts).toString("utf8"),
        }),
      );
      response.on("error", reject);
    });
    req.on("error", reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });

const envelopeOf = (answer: Answer) =>
  JSON.parse(answer.body) as {
    error: { message: string; type: string; code: string; param: string | null };
  };

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

  it("answers an ApiError with the OpenAI envelope, its status and Retry-After", async () => {
    const { url, log } = await start(async (req) => {
      await readBody(req, 1024);
      throw new ApiError("overloaded", "too busy: retry shortly", { retryAfterS: 2 });
    });
    const answer = await send(`${url}/v1/chat/completions`, ["{}"]);
    expect(answer.status).toBe(503);
    expect(answer.headers["retry-after"]).toBe("2");
    expect(answer.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(answer.headers["content-length"]).toBe(String(Buffer.byteLength(answer.body)));
    expect(envelopeOf(answer)).toEqual({
      error: {
        message: "too busy: retry shortly",
        type: "server_error",
        code: "overloaded",
        param: null,
      },
    });
    expect(log.error).not.toHaveBeenCalled();
  });

  it("names the field of an ApiError and sends no Retry-After when there is none", async () => {
    const { url } = await start(async () => {
      throw new ApiError("missing_model", "say which model should answer", { param: "model" });
    });
    const answer = await send(`${url}/v1/chat/completions`, ["{}"]);
    expect(answer.status).toBe(400);
    expect(answer.headers).not.toHaveProperty("retry-after");
    expect(envelopeOf(answer).error).toMatchObject({ code: "missing_model", param: "model" });
  });

  it.each([
    ["an Error", new Error("secret internals at /srv/neuron:42")],
    ["a TypeError", new TypeError("Cannot read properties of undefined (reading 'secret')")],
    ["a thrown string", "secret string"],
  ])("answers %s with a generic 500 and logs it", async (_name, thrown) => {
    const { url, log } = await start(async () => {
      throw thrown;
    });
    const answer = await send(`${url}/v1/chat/completions`, ["{}"]);
    expect(answer.status).toBe(500);
    expect(envelopeOf(answer)).toEqual({
      error: {
        message: "internal error",
        type: "server_error",
        code: "internal_error",
        param: null,
      },
    });
    expect(answer.body).not.toContain("secret");
    expect(log.error).toHaveBeenCalledTimes(1);
    expect(log.error).toHaveBeenCalledWith({ err: thrown }, "unexpected error");
  });

  it("cuts the connection when the handler fails after the answer has started", async () => {
    const started = deferred();
    const { url } = await start(async (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
      await started.promise;
      throw new Error("broke mid-stream");
    });
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(`${url}/v1/chat/completions`, { method: "POST", agent: false }, resolve);
      req.on("error", reject);
      req.end("{}");
    });
    expect(response.statusCode).toBe(200);
    let received = "";
    response.on("data", (chunk: Buffer) => {
      received += chunk.toString();
      started.resolve();
    });
    const ended = deferred<string>();
    response.on("end", () => ended.resolve("end"));
    response.on("error", (error) => ended.resolve(`error: ${error.message}`));
    response.on("close", () => ended.resolve("close"));
    // The client sees the stream break off: no clean end after the first event.
    expect(await ended.promise).not.toBe("end");
    expect(response.complete).toBe(false);
    expect(received).toBe("data: one\n\n");
  });

  it("cuts a sized answer that fails halfway, so the client cannot take it for complete", async () => {
    const { url } = await start(async (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "application/json", "content-length": 100 });
      res.write('{"partial":');
      await new Promise<void>((resolve) => setImmediate(resolve));
      throw new ApiError("upstream_error", "too late for an envelope");
    });
    await expect(
      fetch(`${url}/v1/chat/completions`, { method: "POST", body: "{}" }).then((r) => r.text()),
    ).rejects.toThrow();
  });

  it("keeps serving after a handler failed", async () => {
    let calls = 0;
    const { url } = await start(async (req, res) => {
      calls += 1;
      if (calls === 1) throw new Error("first one fails");
      await readBody(req, 1024);
      res.end("second one works");
    });
    expect((await send(`${url}/v1/x`, ["{}"])).status).toBe(500);
    expect((await send(`${url}/v1/x`, ["{}"])).body).toBe("second one works");
  });
});

describe("failRequest", () => {
  it("writes nothing more and only cuts the connection once the answer was sent", async () => {
    const log = logSpy();
    const done = deferred<{ destroyed: boolean }>();
    const server = await listen(
      (req, res) => {
        req.resume();
        res.end("complete");
        failRequest(res, new Error("after the end"), log);
        done.resolve({ destroyed: res.destroyed });
      },
      0,
      "127.0.0.1",
    );
    closers.push(closeServer(server));
    const { port } = server.address() as AddressInfo;
    const answer = await fetch(`http://127.0.0.1:${port}/`).then(
      async (r) => r.text(),
      () => "cut",
    );
    expect(["complete", "cut"]).toContain(answer);
    expect(await done.promise).toEqual({ destroyed: true });
  });
});

describe("readBody", () => {
  it("reads a body sent in one piece", async () => {
    const { handler } = echo(1024);
    const { url } = await start(handler);
    const answer = await send(`${url}/v1/chat/completions`, ['{"model":"m"}'], {
      "content-type": "application/json",
      "content-length": 13,
    });
    expect(JSON.parse(answer.body)).toEqual({ length: 13, text: '{"model":"m"}' });
  });

  it("joins a body sent in many chunks, multi-byte characters split across them", async () => {
    const { handler } = echo(2 ** 20);
    const { url } = await start(handler);
    const whole = Buffer.from(`{"prompt":"${"☃".repeat(50_000)}"}`);
    // Cut at odd offsets so that characters straddle chunks.
    const chunks: Buffer[] = [];
    for (let at = 0; at < whole.length; at += 7_777) chunks.push(whole.subarray(at, at + 7_777));
    const answer = await send(`${url}/v1/completions`, chunks);
    const echoed = JSON.parse(answer.body) as { length: number; text: string };
    expect(echoed.length).toBe(whole.length);
    expect(echoed.text).toBe(whole.toString("utf8"));
  });

  it.each([
    ["content-length 0", { "content-length": 0 }],
    ["an empty chunked body", { "transfer-encoding": "chunked" }],
  ])("reads an empty body (%s) as an empty Buffer", async (_name, headers) => {
    const { handler } = echo(1024);
    const { url } = await start(handler);
    const answer = await send(`${url}/v1/x`, [], headers);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ length: 0, text: "" });
  });

  it("takes a body of exactly the limit", async () => {
    const { handler } = echo(1024);
    const { url } = await start(handler);
    const answer = await send(`${url}/v1/x`, ["x".repeat(1024)], { "content-length": 1024 });
    expect(JSON.parse(answer.body)).toMatchObject({ length: 1024 });
  });

  it("refuses a declared length over the limit with 413, without reading the body", async () => {
    const { handler, failed } = echo(1024);
    const { url, log } = await start(handler);
    const answer = await send(`${url}/v1/x`, ["x".repeat(1025)], { "content-length": 1025 });
    expect(answer.status).toBe(413);
    expect(envelopeOf(answer).error).toMatchObject({
      code: "payload_too_large",
      type: "invalid_request_error",
    });
    const { error, flowing } = await failed;
    expect(error).toBeInstanceOf(ApiError);
    // Nobody started reading the request: it was refused on its header alone.
    expect(flowing).toBeNull();
    expect(log.error).not.toHaveBeenCalled();
  });

  it("refuses a chunked body that grows past the limit with 413", async () => {
    const { handler, failed } = echo(1024);
    const { url } = await start(handler);
    const answer = await send(`${url}/v1/x`, ["x".repeat(600), "y".repeat(600), "z".repeat(600)]);
    expect(answer.status).toBe(413);
    expect(envelopeOf(answer).error.code).toBe("payload_too_large");
    expect((await failed).error).toMatchObject({ code: "payload_too_large" });
  });

  it("refuses a chunked body past the limit even when it is huge", async () => {
    const { handler } = echo(64 * 2 ** 10);
    const { url } = await start(handler);
    const chunk = Buffer.alloc(64 * 2 ** 10, "x");
    const answer = await send(
      `${url}/v1/x`,
      Array.from({ length: 64 }, () => chunk),
    );
    expect(answer.status).toBe(413);
  });

  it.each(["gzip", "deflate", "br", "gzip, identity"])(
    "refuses a body with content-encoding %s with 400",
    async (encoding) => {
      const { handler, failed } = echo(1024);
      const { url } = await start(handler);
      const answer = await send(`${url}/v1/x`, ["{}"], { "content-encoding": encoding });
      expect(answer.status).toBe(400);
      expect(envelopeOf(answer).error).toMatchObject({ code: "invalid_request_error" });
      expect(envelopeOf(answer).error.message).toContain(encoding);
      expect((await failed).flowing).toBeNull();
    },
  );

  it("reads a body whose content-encoding is identity", async () => {
    const { handler } = echo(1024);
    const { url } = await start(handler);
    const answer = await send(`${url}/v1/x`, ["{}"], { "content-encoding": "identity" });
    expect(JSON.parse(answer.body)).toEqual({ length: 2, text: "{}" });
  });

  it("rejects with an ApiError when the client goes away in the middle of the body", async () => {
    const entered = deferred();
    const failed = deferred<unknown>();
    let calls = 0;
    const { port, url, log } = await start(async (req, res) => {
      calls += 1;
      if (calls > 1) {
        res.end(`served ${(await readBody(req, 1024)).length}`);
        return;
      }
      entered.resolve();
      try {
        await readBody(req, 1024);
      } catch (error) {
        failed.resolve(error);
        throw error;
      }
    });
    const client = connect(port, "127.0.0.1");
    client.on("error", () => {});
    closers.push(() => {
      client.destroy();
    });
    await once(client, "connect");
    client.write(
      "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n" + '{"model":',
    );
    await entered.promise;
    client.destroy();
    const error = await failed.promise;
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: "invalid_request_error" });
    // The failure was answered (to nobody) without an unexpected error, and the server lives on.
    expect((await send(`${url}/v1/x`, ["{}"])).body).toBe("served 2");
    expect(log.error).not.toHaveBeenCalled();
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
