import { request as httpRequest, type OutgoingHttpHeaders } from "node:http";
import { openAIProblems } from "@cortex/testkit/openai";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import {
  client,
  errorOf,
  gpu,
  KEY,
  NEURON_TOKEN,
  resident,
  useCortexFleet,
} from "./cortex.fixtures.js";
import type { Cortex } from "./cortex.js";

// What a client sees of cortex beyond routing, in-process against fake neurons:
// `GET /v1/models/{id}` through the official client, client keys in every accepted header,
// which of the client's headers (and its query string) reach the neuron, and CORS.

const { fleet, neuron } = useCortexFleet();

const BODY = JSON.stringify({ model: "chat-small", messages: [{ role: "user", content: "hi" }] });

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One request with exactly these headers (fetch refuses some, and adds its own). */
const raw = (
  c: Cortex,
  method: string,
  path: string,
  headers: OutgoingHttpHeaders,
  body?: string,
): Promise<RawAnswer> =>
  new Promise((resolve, reject) => {
    const url = new URL(c.url);
    const req = httpRequest(
      { host: url.hostname, port: url.port, path, method, headers },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });

const oneNode = (overrides: Record<string, unknown> = {}) =>
  fleet([{ name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] }], overrides);

describe("GET /v1/models/{id}", () => {
  it("answers the model object by id, with status, locations, aliases and waiting", async () => {
    const c = await oneNode();
    const model = await client(c).models.retrieve("chat-small");
    expect(openAIProblems("Model", model)).toEqual([]);
    expect(model).toMatchObject({
      id: "chat-small",
      object: "model",
      owned_by: "cortex",
      status: "loaded",
      locations: [{ node: "a", status: "loaded" }],
      aliases: ["small", "org/chat-small"],
      waiting: 0,
    });
    // The same entry as the list's.
    const list = await client(c).models.list();
    expect(list.data.find((entry) => entry.id === "chat-small")).toEqual(model);
    // A catalogue model resident nowhere.
    expect(await client(c).models.retrieve("pinned-big")).toMatchObject({
      id: "pinned-big",
      status: "available",
      locations: [],
    });
  });

  it.each(["small", "org/chat-small"])(
    "answers the canonical model for the alias %s",
    async (alias) => {
      const c = await oneNode();
      // The official client percent-encodes the id (org%2Fchat-small).
      expect((await client(c).models.retrieve(alias)).id).toBe("chat-small");
      // A raw slash is the rest of the path too.
      const answer = await raw(c, "GET", `/v1/models/${alias}`, { authorization: `Bearer ${KEY}` });
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toMatchObject({ id: "chat-small" });
    },
  );

  it("answers 404 model_not_found in the OpenAI envelope for an unknown model", async () => {
    const c = await oneNode();
    const error = await client(c)
      .models.retrieve("no/such-model")
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(error).toMatchObject({ status: 404, code: "model_not_found" });
    const answer = await raw(c, "GET", "/v1/models/%E0%A4%A", { authorization: `Bearer ${KEY}` });
    expect(answer.status).toBe(404);
    expect(openAIProblems("ErrorResponse", JSON.parse(answer.body))).toEqual([]);
  });

  it("needs a client key", async () => {
    const c = await oneNode();
    const error = await client(c, "wrong")
      .models.retrieve("chat-small")
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.AuthenticationError);
  });
});

describe("client keys", () => {
  it.each([
    ["authorization", `Bearer ${KEY}`],
    ["x-api-key", KEY],
    ["api-key", KEY],
  ])("accepts the key as %s on inference and on GET /v1/models", async (name, value) => {
    const c = await oneNode();
    const answer = await raw(
      c,
      "POST",
      "/v1/chat/completions",
      { [name]: value, "content-type": "application/json" },
      BODY,
    );
    expect(answer.status).toBe(200);
    expect((await raw(c, "GET", "/v1/models", { [name]: value })).status).toBe(200);
    expect((await raw(c, "GET", "/v1/models/small", { [name]: value })).status).toBe(200);
    // None of them reaches the neuron: it gets its own token.
    const seen = neuron("a").headers ?? {};
    expect(seen.authorization).toBe(`Bearer ${NEURON_TOKEN}`);
    expect(seen["x-api-key"]).toBeUndefined();
    expect(seen["api-key"]).toBeUndefined();
  });

  it.each([
    ["x-api-key", "wrong"],
    ["api-key", "wrong"],
  ])("refuses a wrong %s without reaching a neuron", async (name, value) => {
    const c = await oneNode();
    const answer = await raw(
      c,
      "POST",
      "/v1/chat/completions",
      { [name]: value, "content-type": "application/json" },
      BODY,
    );
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body).error.code).toBe("invalid_api_key");
    expect((await raw(c, "GET", "/v1/models", { [name]: value })).status).toBe(401);
    expect(neuron("a").requests.size).toBe(0);
  });
});

describe("headers and query", () => {
  it("forwards the client's headers and query string, but no credential, cookie or hop header", async () => {
    const c = await oneNode();
    // An alias: the body the neuron gets is shorter than the client's.
    const body = JSON.stringify({ model: "small", messages: [{ role: "user", content: "hi" }] });
    const answer = await raw(
      c,
      "POST",
      "/v1/chat/completions?api-version=2024-06-01&x=a%20b",
      {
        authorization: `Bearer ${KEY}`,
        "x-api-key": "sk-anthropic-style",
        "api-key": "sk-azure-style",
        cookie: "session=secret",
        "proxy-authorization": "Basic c2VjcmV0",
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "tools-2024-04-04",
        "openai-beta": "assistants=v2",
        "x-custom": "kept",
        connection: "keep-alive, x-hop",
        "x-hop": "dropped",
        te: "trailers",
        "accept-encoding": "gzip",
        "x-request-id": "client-id-1",
      },
      body,
    );
    expect(answer.status).toBe(200);
    const seen = neuron("a").headers ?? {};
    expect(seen).toMatchObject({
      "anthropic-version": "2023-06-01",
      "anthropic-beta": "tools-2024-04-04",
      "openai-beta": "assistants=v2",
      "x-custom": "kept",
      "content-type": "application/json",
      authorization: `Bearer ${NEURON_TOKEN}`,
      // Cortex's id, the client's here since it was sane, and the one it answered with.
      "x-request-id": "client-id-1",
      // Recomputed for the body as sent on (the alias replaced).
      "content-length": String(Buffer.byteLength(body) - "small".length + "chat-small".length),
    });
    expect(answer.headers["x-request-id"]).toBe("client-id-1");
    for (const name of [
      "x-api-key",
      "api-key",
      "cookie",
      "proxy-authorization",
      "x-hop",
      "te",
      "accept-encoding",
    ])
      expect(seen[name], name).toBeUndefined();
    expect(neuron("a").lastPath).toBe("/v1/chat/completions?api-version=2024-06-01&x=a%20b");
  });

  it("sends the path without a query as it was", async () => {
    const c = await oneNode();
    await client(c).chat.completions.create({
      model: "chat-small",
      messages: [{ role: "user", content: "hi" }],
    });
    expect(neuron("a").lastPath).toBe("/v1/chat/completions");
  });
});

describe("CORS", () => {
  const ORIGIN = "https://app.example.com";

  it("answers an allowed origin's preflight without a key", async () => {
    const c = await oneNode({ cors_origins: [ORIGIN] });
    const answer = await raw(c, "OPTIONS", "/v1/chat/completions", {
      origin: ORIGIN,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type, x-stainless-os, (bad)",
    });
    expect(answer.status).toBe(204);
    expect(answer.headers["access-control-allow-origin"]).toBe(ORIGIN);
    expect(answer.headers["access-control-allow-methods"]).toMatch(/POST/);
    expect(answer.headers["access-control-allow-headers"]).toBe(
      "authorization, content-type, x-stainless-os",
    );
    expect(answer.headers["access-control-max-age"]).toBe("600");
    expect(answer.headers.vary).toMatch(/origin/);
    expect(neuron("a").requests.size).toBe(0);
  });

  it("marks answers to an allowed origin, errors included, on both paths", async () => {
    const c = await oneNode({ cors_origins: [ORIGIN] });
    const headers = { origin: ORIGIN, authorization: `Bearer ${KEY}` };
    const answers = [
      await raw(
        c,
        "POST",
        "/v1/chat/completions",
        { ...headers, "content-type": "application/json" },
        BODY,
      ),
      await raw(c, "GET", "/v1/models", headers),
      await raw(c, "GET", "/v1/models/nope", headers),
      await raw(c, "GET", "/v1/models", { origin: ORIGIN }),
    ];
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 404, 401]);
    for (const answer of answers) {
      expect(answer.headers["access-control-allow-origin"]).toBe(ORIGIN);
      expect(answer.headers.vary).toBe("origin");
      expect(answer.headers["access-control-expose-headers"]).toMatch(/x-request-id/);
    }
    // The CORS origin is never taken for a key, nor sent on.
    expect(neuron("a").headers?.authorization).toBe(`Bearer ${NEURON_TOKEN}`);
  });

  it("gives other origins, and paths outside /v1, no CORS headers", async () => {
    const c = await oneNode({ cors_origins: [ORIGIN] });
    const evil = "https://evil.example";
    const preflight = await raw(c, "OPTIONS", "/v1/chat/completions", {
      origin: evil,
      "access-control-request-method": "POST",
    });
    // Not answered as a preflight: it goes on like any request without a key.
    expect(preflight.status).toBe(401);
    const answers = [
      preflight,
      await raw(
        c,
        "POST",
        "/v1/chat/completions",
        {
          origin: evil,
          authorization: `Bearer ${KEY}`,
          "content-type": "application/json",
        },
        BODY,
      ),
      await raw(c, "GET", "/health", { origin: ORIGIN }),
    ];
    expect(answers[1]?.status).toBe(200);
    for (const answer of answers)
      expect(
        Object.keys(answer.headers).filter((name) => name.startsWith("access-control-")),
      ).toEqual([]);
  });

  it("allows every origin with *", async () => {
    const any = await oneNode({ cors_origins: ["*"] });
    const anywhere = "http://localhost:5173";
    const answer = await raw(any, "OPTIONS", "/v1/models", {
      origin: anywhere,
      "access-control-request-method": "GET",
    });
    expect(answer.status).toBe(204);
    expect(answer.headers["access-control-allow-origin"]).toBe(anywhere);
  });

  it("sends no CORS headers without cors_origins", async () => {
    const c = await oneNode();
    const answer = await raw(c, "OPTIONS", "/v1/models", {
      origin: ORIGIN,
      "access-control-request-method": "GET",
    });
    expect(answer.headers["access-control-allow-origin"]).toBeUndefined();
    const error = await errorOf(await fetch(`${c.url}/v1/models`, { headers: { origin: ORIGIN } }));
    expect(error.code).toBe("invalid_api_key");
  });
});
