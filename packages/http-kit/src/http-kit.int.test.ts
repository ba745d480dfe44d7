import { once } from "node:events";
import type { Server } from "node:http";
import express from "express";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  ApiError,
  errorHandler,
  notFound,
  openEventStream,
  parseBody,
  requireBearer,
} from "./index.js";

const errors: unknown[] = [];
const silent = { info: () => {}, warn: () => {}, error: (object: object) => errors.push(object) };
const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
});

const serve = async (tokens: string | string[]) => {
  const app = express();
  app.use(requireBearer(tokens));
  app.post("/echo", express.json(), (req, res) => {
    res.json(parseBody(z.strictObject({ n: z.int() }), req.body));
  });
  app.get("/busy", () => {
    throw new ApiError("overloaded", "too busy", { retryAfterS: 3 });
  });
  app.get("/models/:id/logs", (req, res) => {
    res.json({ id: req.params.id });
  });
  app.get("/bug", () => {
    throw new Error("secret internals");
  });
  app.get("/events", (_req, res) => {
    const stream = openEventStream(res);
    stream.send("progress", { n: 1 });
    stream.end();
  });
  app.use(notFound);
  app.use(errorHandler(silent));
  const server = app.listen(0, "127.0.0.1");
  servers.push(server);
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  return (path: string, init: RequestInit = {}) => fetch(`http://127.0.0.1:${port}${path}`, init);
};

describe("http-kit", () => {
  it("accepts any configured key and refuses others with the envelope", async () => {
    const call = await serve(["k1", "k2"]);
    expect((await call("/busy", { headers: { authorization: "Bearer k2" } })).status).toBe(503);
    const refused = await call("/busy", { headers: { authorization: "Bearer k3" } });
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: { code: "invalid_api_key" } });
    expect((await call("/busy")).status).toBe(401);
  });

  it("lets everything through when no key is configured", async () => {
    const call = await serve("");
    expect((await call("/nowhere")).status).toBe(404);
  });

  it("writes errors as the OpenAI envelope, with Retry-After when transient", async () => {
    const call = await serve([]);
    const busy = await call("/busy");
    expect(busy.headers.get("retry-after")).toBe("3");
    expect(await busy.json()).toEqual({
      error: { message: "too busy", type: "server_error", code: "overloaded", param: null },
    });
    const bug = await call("/bug");
    expect(bug.status).toBe(500);
    expect(JSON.stringify(await bug.json())).not.toContain("secret");
  });

  it("names every invalid field and answers bad JSON with 400", async () => {
    const call = await serve([]);
    const post = (body: string) =>
      call("/echo", { method: "POST", body, headers: { "content-type": "application/json" } });
    const wrong = await post(JSON.stringify({ n: "x", extra: 1 }));
    expect(wrong.status).toBe(400);
    const { error } = (await wrong.json()) as { error: { message: string; param: string } };
    expect(error.message).toContain("n:");
    expect(error.message).toContain("extra: unknown key");
    expect(error.param).toBe("n");
    expect((await post("{oops")).status).toBe(400);
    expect(await (await post(JSON.stringify({ n: 2 }))).json()).toEqual({ n: 2 });
  });

  it("never echoes more than 4096 characters of what a client sent in an error", async () => {
    const call = await serve([]);
    const key = "k".repeat(60_000);
    const answer = await call("/echo", {
      method: "POST",
      body: JSON.stringify({ n: 1, [key]: 1 }),
      headers: { "content-type": "application/json" },
    });
    expect(answer.status).toBe(400);
    const { error } = (await answer.json()) as { error: { message: string } };
    expect(error.message.length).toBeLessThanOrEqual(4096);
    expect(error.message).toContain("characters cut");
  });

  it("answers a path parameter that is not valid percent-encoding with 400, not a logged 500", async () => {
    const call = await serve([]);
    errors.length = 0;
    for (const path of ["/models/%ZZ/logs", "/models/%E0%A4%A/logs", "/models/%/logs"]) {
      const answer = await call(path);
      expect(answer.status).toBe(400);
      expect(await answer.json()).toMatchObject({
        error: { code: "invalid_request_error", message: "the path is not valid percent-encoding" },
      });
    }
    expect(errors).toEqual([]);
    expect(await (await call("/models/a%20b/logs")).json()).toEqual({ id: "a b" });
  });

  it("streams named server-sent events", async () => {
    const call = await serve([]);
    const answer = await call("/events");
    expect(answer.headers.get("content-type")).toContain("text/event-stream");
    expect(await answer.text()).toBe('event: progress\ndata: {"n":1}\n\n');
  });
});
