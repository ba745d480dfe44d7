import { type IncomingMessage, request } from "node:http";
import type { AddressInfo } from "node:net";
import { deferred } from "@cortex/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError } from "./api-error.js";
import { readBody } from "./body.js";
import {
  closeAll,
  closers,
  closeServer,
  envelopeOf,
  logSpy,
  send,
  start,
} from "./fast-path.fixtures.js";
import { failRequest, listen } from "./fast-path.js";

// How the fast path answers a handler that failed, on loopback: the OpenAI envelope before the
// answer has started, a cut connection after, and a server that keeps serving.

afterEach(closeAll);

describe("withFastPath", () => {
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
