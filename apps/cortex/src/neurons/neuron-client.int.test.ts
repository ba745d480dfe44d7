import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { LoadProgress, NeuronModel } from "@cortex/protocol";
import { neuronModel, startFakeNeuron } from "@cortex/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { NeuronCallError } from "./call-error.js";
import { NeuronClient } from "./neuron-client.js";

// The client against real HTTP on loopback: the fake neuron for the API, and a raw server for
// what a neuron should never do (hang, answer garbage, split its stream at awkward places).

const TOKEN = "neuron-secret-token";

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const neuron = async (options: { models?: NeuronModel[]; loadDelayMs?: number } = {}) => {
  const fake = await startFakeNeuron({ name: "gpu-a", token: TOKEN, ...options });
  closers.push(() => fake.close());
  return fake;
};

const clientFor = (url: string, options: { token?: string; timeoutMs?: number } = {}) => {
  const client = new NeuronClient({
    name: "gpu-a",
    url,
    token: options.token ?? TOKEN,
    timeoutMs: options.timeoutMs ?? 2000,
  });
  closers.push(() => client.close());
  return client;
};

/** A raw server whose handler decides everything; counts the connections it accepted. */
const raw = async (handler: (req: IncomingMessage, res: ServerResponse) => void) => {
  const server: Server = createServer(handler);
  const sockets = new Set<Socket>();
  let connections = 0;
  server.on("connection", (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    connections: () => connections,
  };
};

const model = neuronModel;

const load = { model_id: "m1", harness: "llamacpp", source: "hf:x/y/m1.gguf" };

const failure = async (promise: Promise<unknown>): Promise<NeuronCallError> => {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(NeuronCallError);
  const call = error as NeuronCallError;
  expect(call.node).toBe("gpu-a");
  expect(call.message).toContain('"gpu-a"');
  expect(call.message).not.toContain(TOKEN);
  return call;
};

describe("NeuronClient against the fake neuron", () => {
  it("reads health, discovery and models through the protocol schemas", async () => {
    const fake = await neuron({ models: [model("m1")] });
    const client = clientFor(`${fake.url}/`);
    expect((await client.health()).status).toBe("ok");
    expect((await client.discovery()).node.name).toBe("gpu-a");
    expect(await client.models()).toMatchObject([{ id: "m1", status: "loaded" }]);
    expect(await client.endpoint("m1")).toEqual({ url: `http://localhost:${fake.port}` });
    expect(await client.logs("m1")).toContain("m1");
  });

  it("loads plainly and with streamed progress", async () => {
    const fake = await neuron({ loadDelayMs: 20 });
    const client = clientFor(fake.url);
    const answer = await client.load(load);
    expect(answer).toMatchObject({ id: "m1", status: "loaded", already_loaded: false });
    const progress: LoadProgress[] = [];
    const streamed = await client.load(
      { ...load, model_id: "m2" },
      { onProgress: (event) => progress.push(event) },
    );
    expect(streamed).toMatchObject({ id: "m2", status: "loaded", already_loaded: false });
    expect(progress.map((event) => event.phase)).toContain("ready");
    expect(fake.loads.map((request) => request.model_id)).toEqual(["m1", "m2"]);
    expect(await client.unload({ model_id: "m1" })).toEqual({ status: "unloaded" });
  });

  it("passes the neuron's error codes, statuses and Retry-After on", async () => {
    const fake = await neuron();
    const client = clientFor(fake.url);
    fake.failNextLoad("insufficient_vram", "needs 9000 MB on device 0");
    const vram = await failure(client.load(load));
    expect(vram).toMatchObject({
      code: "insufficient_vram",
      status: 409,
      retryAfterS: 5,
      connectFailed: false,
    });
    expect(vram.message).toContain("needs 9000 MB");

    fake.failNextLoad("load_failed", "the harness exited with code 1");
    const streamed = await failure(client.load(load, { onProgress: () => {} }));
    expect(streamed).toMatchObject({ code: "load_failed", status: 502, connectFailed: false });

    const unknown = await failure(client.unload({ model_id: "nope" }));
    expect(unknown).toMatchObject({ code: "model_not_found", status: 404 });
    const endpoint = await failure(client.endpoint("nope"));
    expect(endpoint.code).toBe("model_not_found");
    const harness = await failure(client.load({ ...load, harness: "vllm" }));
    expect(harness).toMatchObject({ code: "harness_not_found", status: 400 });
  });

  it("reports a wrong token as invalid_api_key without echoing it", async () => {
    const fake = await neuron();
    const client = clientFor(fake.url, { token: "wrong-token" });
    const error = await failure(client.models());
    expect(error).toMatchObject({ code: "invalid_api_key", status: 401 });
    expect(error.message).not.toContain("wrong-token");
  });

  it("says the connection failed when the neuron is down, and recovers when it is back", async () => {
    const fake = await neuron({ models: [model("m1")] });
    const client = clientFor(fake.url);
    expect(await client.models()).toHaveLength(1);
    await fake.kill();
    const down = await failure(client.models());
    expect(down).toMatchObject({ code: "upstream_error", status: 502, connectFailed: true });
    expect(down.message).toMatch(/connection (refused|reset)/);
    await fake.revive();
    expect(await client.models()).toHaveLength(1);
  });

  it("aborts a call when its signal fires", async () => {
    const fake = await neuron({ loadDelayMs: 5000 });
    const client = clientFor(fake.url);
    const controller = new AbortController();
    const pending = client.load(load, { signal: controller.signal, timeoutMs: 10_000 });
    await expect.poll(() => fake.loads.length).toBe(1);
    controller.abort();
    const error = await failure(pending);
    expect(error.message).toContain("aborted");
  });
});

describe("NeuronClient against a misbehaving server", () => {
  it("times out with upstream_timeout", async () => {
    const server = await raw(() => {
      // Never answers.
    });
    const client = clientFor(server.url, { timeoutMs: 100 });
    const error = await failure(client.models());
    expect(error).toMatchObject({ code: "upstream_timeout", status: 504, connectFailed: true });
    expect(error.message).toContain("100 ms");
  });

  it("maps a 5xx without an envelope and a body that is not the protocol to upstream_error", async () => {
    const server = await raw((req, res) => {
      if (req.url === "/models") {
        res.writeHead(500, { "content-type": "text/html" });
        res.end("<h1>oops</h1>");
      } else if (req.url === "/discovery") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ node: "not an object" }));
      } else {
        res.writeHead(503, {
          "content-type": "application/json",
          "retry-after": new Date(Date.now() + 30_000).toUTCString(),
        });
        res.end(JSON.stringify({ error: { message: "busy", type: "x", code: null, param: null } }));
      }
    });
    const client = clientFor(server.url);
    const html = await failure(client.models());
    expect(html).toMatchObject({ code: "upstream_error", status: 502, connectFailed: false });
    expect(html.message).toContain("500");
    const body = await failure(client.discovery());
    expect(body).toMatchObject({ code: "upstream_error", status: 502 });
    expect(body.message).toContain("unexpected body");
    const busy = await failure(client.health());
    expect(busy).toMatchObject({ code: "service_unavailable", status: 503 });
    expect(busy.retryAfterS).toBeGreaterThanOrEqual(28);
    expect(busy.retryAfterS).toBeLessThanOrEqual(31);
  });

  it("sends the token only when it has one, and keeps connections alive", async () => {
    const seen: (string | undefined)[] = [];
    const server = await raw((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: "ok", version: "x", uptime_s: 1 }));
    });
    await clientFor(server.url, { token: "" }).health();
    const client = clientFor(server.url);
    await client.health();
    await client.health();
    await client.health();
    expect(seen).toEqual([undefined, `Bearer ${TOKEN}`, `Bearer ${TOKEN}`, `Bearer ${TOKEN}`]);
    expect(server.connections()).toBe(2);
  });

  it("parses a load stream split at every byte, with CRLF line ends and comments", async () => {
    const text =
      ": ping\r\n\r\n" +
      'event: progress\r\ndata: {"phase":"downloading","bytes":5,"total":10,"message":"héllo ✓"}\r\n\r\n' +
      "event: unknown\r\ndata: {}\r\n\r\n" +
      'event: result\r\ndata: {"id":"m1","status":"loaded",\r\ndata: "url":"http://localhost:1","load_ms":3,"already_loaded":false}\r\n\r\n';
    const bytes = Buffer.from(text, "utf8");
    const server = await raw((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.flushHeaders();
      let at = 0;
      const next = () => {
        if (at >= bytes.length) {
          res.end();
          return;
        }
        res.write(bytes.subarray(at, at + 1), () => setImmediate(next));
        at += 1;
      };
      next();
    });
    const progress: LoadProgress[] = [];
    const answer = await clientFor(server.url).load(load, {
      onProgress: (event) => progress.push(event),
    });
    expect(progress).toEqual([{ phase: "downloading", bytes: 5, total: 10, message: "héllo ✓" }]);
    expect(answer).toEqual({
      id: "m1",
      status: "loaded",
      url: "http://localhost:1",
      load_ms: 3,
      already_loaded: false,
    });
  });

  it("fails a load stream that ends without a result", async () => {
    const server = await raw((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(
        'event: progress\ndata: {"phase":"queued","bytes":null,"total":null,"message":null}\n\n',
      );
    });
    const error = await failure(clientFor(server.url).load(load, { onProgress: () => {} }));
    expect(error).toMatchObject({ code: "upstream_error", connectFailed: false });
    expect(error.message).toContain("without a result");
  });
});
