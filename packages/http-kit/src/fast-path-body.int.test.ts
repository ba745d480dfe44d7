import { once } from "node:events";
import { connect } from "node:net";
import { deferred } from "@cortex/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError } from "./api-error.js";
import { readBody } from "./body.js";
import { closeAll, closers, echo, envelopeOf, send, start } from "./fast-path.fixtures.js";

// readBody behind the fast path, fed by real (and misbehaving) clients on loopback: chunked and
// sized bodies, the size limit, content-encoding, and a client that goes away mid-body.

afterEach(closeAll);

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
