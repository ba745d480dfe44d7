import { createServer, type IncomingHttpHeaders, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { testManager } from "../models/model-manager.fixtures.js";
import type { ModelManager } from "../models/model-manager.js";
import { scripted } from "../supervisor/harness-supervisor.fixtures.js";
import { startTestApp, type TestApp } from "./neuron-app.fixtures.js";

// What a harness receives of a model-routed request, on loopback: the neuron in front of a
// recording server that stands in for the harness (a scripted process "listens" on its port).
// The client's headers but for credentials, cookies and hop-by-hop ones, the query string, the
// body byte for byte with its content type, and the path the route table gives it.

const TOKEN = "neuron-token";

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

let harness: Server;
let received: Received[];
let app: TestApp;
let manager: ModelManager;

beforeAll(async () => {
  harness = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      received.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks),
      });
      const text = JSON.stringify({ text: "ok" });
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      });
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => harness.listen(0, "127.0.0.1", resolve));
  const port = (harness.address() as AddressInfo).port;
  const fake = defineHarness(
    "fake",
    { command: ["fake-harness", "--model", "{model_path}", "--port", "{port}"] },
    { node: process.execPath, entry: "unused" },
  ) as Harness;
  let pids = 0;
  manager = testManager({
    harnesses: new Map([["fake", fake]]),
    runner: { start: () => scripted(7000 + pids++).child },
    sources: { check: () => {}, prepare: async (source) => `/models/${source}` },
    freePort: async () => port,
    probe: async () => true,
  });
  await manager.load({ model_id: "m", harness: "fake", source: "m.gguf" });
  app = await startTestApp(manager, { token: TOKEN });
});

beforeEach(() => {
  received = [];
});

afterAll(async () => {
  await manager.shutdown();
  await app.close();
  harness.closeAllConnections();
  await new Promise((resolve) => harness.close(resolve));
});

/** One request to the neuron with exactly these headers (and its token unless given). */
const send = (
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer | string,
): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const url = new URL(app.base);
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: { authorization: `Bearer ${TOKEN}`, ...headers },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });

/** What the harness got, for the one request the test sent. */
const only = (): Received => {
  expect(received).toHaveLength(1);
  return received[0] as Received;
};

const BOUNDARY = "neuron-test-boundary";

const form = (model: string, file: Buffer): Buffer =>
  Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n`,
    ),
    file,
    Buffer.from(
      `\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n${model}\r\n--${BOUNDARY}--\r\n`,
    ),
  ]);

describe("what a harness receives", () => {
  it("gets the client's headers and query string, but no credential, cookie or hop header", async () => {
    const body = '{"model":"m","messages":[]}';
    const answer = await send(
      "POST",
      "/v1/chat/completions?api-version=2024-06-01&x=a%20b",
      {
        "content-type": "application/json; charset=utf-8",
        "anthropic-version": "2023-06-01",
        "x-session-id": "s1",
        "x-request-id": "cortex-id-1",
        "x-api-key": "sk-client",
        "api-key": "sk-client",
        cookie: "session=secret",
        "proxy-authorization": "Basic c2VjcmV0",
        connection: "keep-alive, x-hop",
        "x-hop": "dropped",
        "accept-encoding": "gzip",
      },
      body,
    );
    expect(answer.status).toBe(200);
    const got = only();
    expect(got.method).toBe("POST");
    expect(got.url).toBe("/v1/chat/completions?api-version=2024-06-01&x=a%20b");
    expect(got.body.toString()).toBe(body);
    expect(got.headers).toMatchObject({
      "content-type": "application/json; charset=utf-8",
      "anthropic-version": "2023-06-01",
      "x-session-id": "s1",
      "x-request-id": "cortex-id-1",
      "content-length": String(body.length),
    });
    for (const name of [
      "authorization",
      "x-api-key",
      "api-key",
      "cookie",
      "proxy-authorization",
      "x-hop",
      "accept-encoding",
    ])
      expect(got.headers[name], name).toBeUndefined();
  });

  it("gets a JSON body without a content type as application/json", async () => {
    expect((await send("POST", "/v1/embeddings", {}, '{"model":"m","input":"x"}')).status).toBe(
      200,
    );
    expect(only().headers["content-type"]).toBe("application/json");
  });

  it("gets a JSON body labelled form-urlencoded (curl -d) as application/json", async () => {
    const answer = await send(
      "POST",
      "/v1/embeddings",
      { "content-type": "application/x-www-form-urlencoded" },
      '{"model":"m","input":"x"}',
    );
    expect(answer.status).toBe(200);
    expect(only().headers["content-type"]).toBe("application/json");
  });

  it("gets a multipart upload byte for byte, with its content type", async () => {
    const file = Buffer.alloc(300_000, 0x61);
    const body = form("m", file);
    const contentType = `multipart/form-data; boundary=${BOUNDARY}`;
    const answer = await send(
      "POST",
      "/v1/audio/transcriptions?timestamps=1",
      { "content-type": contentType },
      body,
    );
    expect(answer.status).toBe(200);
    const got = only();
    expect(got.url).toBe("/v1/audio/transcriptions?timestamps=1");
    expect(got.headers["content-type"]).toBe(contentType);
    expect(got.body.equals(body)).toBe(true);
  });

  it("gets GET /v1/audio/voices with its query and no body", async () => {
    expect((await send("GET", "/v1/audio/voices?model=m&lang=en", {})).status).toBe(200);
    const got = only();
    expect(got).toMatchObject({ method: "GET", url: "/v1/audio/voices?model=m&lang=en" });
    expect(got.body.length).toBe(0);
    expect(got.headers["content-type"]).toBeUndefined();
  });

  it.each([
    ["/v/chat/completions?q=1", "/v1/chat/completions?q=1"],
    ["/rerank", "/rerank"],
    ["/infill", "/infill"],
    ["/completion", "/completion"],
    ["/v1/messages/count_tokens", "/v1/messages/count_tokens"],
  ])("gets POST %s as %s", async (path, forwarded) => {
    const answer = await send(
      "POST",
      path,
      { "content-type": "application/json" },
      '{"model":"m"}',
    );
    expect(answer.status).toBe(200);
    expect(only().url).toBe(forwarded);
  });

  it.each([
    ["POST", "/v1/chat/completions", "text/plain", "model=m", "invalid_request_error"],
    [
      "POST",
      "/v1/audio/transcriptions",
      `multipart/form-data; boundary=${BOUNDARY}`,
      form("", Buffer.alloc(1)),
      "missing_model",
    ],
    ["GET", "/v1/audio/voices", "", undefined, "missing_model"],
  ])("gets nothing of %s %s with content type %j (%s)", async (method, path, type, body, code) => {
    const answer = await send(method, path, type === "" ? {} : { "content-type": type }, body);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).error.code).toBe(code);
    expect(received).toHaveLength(0);
  });

  it("never reaches the admin API through a versionless path", async () => {
    const answer = await send(
      "POST",
      "/v/models/load",
      { "content-type": "application/json" },
      "{}",
    );
    expect(answer.status).toBe(404);
    expect(received).toHaveLength(0);
  });
});
