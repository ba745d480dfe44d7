import { request } from "node:http";
import { openAIProblems } from "@cortex/testkit/openai";
import { describe, expect, it } from "vitest";
import {
  CATALOGUE,
  errorOf,
  gpu,
  KEY,
  NEURON_TOKEN,
  resident,
  useCortexFleet,
} from "./cortex.fixtures.js";

// `/upstream/{model}/…` in-process against fake neurons, whose `/upstream/<id>/…` answers as a
// harness: `/health`, `/hold` (open until the client leaves) and an echo of everything else.

const { fleet, neuron } = useCortexFleet({
  models: [
    ...CATALOGUE.models,
    // A model whose id is the first segment of chat-small's alias `org/chat-small`.
    { id: "org", harness: "llamacpp", source: "org.gguf", vram_mb: 1000 },
  ],
});

/** What the fake harness saw of an echoed request. */
interface Echo {
  model: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

const call = (url: string, init: RequestInit = {}, key: string | null = KEY) => {
  const headers = new Headers(init.headers);
  if (key !== null) headers.set("authorization", `Bearer ${key}`);
  return fetch(url, { ...init, headers, redirect: "manual" });
};

/** A request with its path as written: fetch would resolve dot segments before sending. */
const rawGet = (base: string, path: string): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const url = new URL(base);
    const req = request(
      {
        hostname: url.hostname,
        port: url.port,
        path,
        headers: { authorization: `Bearer ${KEY}` },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });

const withSmall = () =>
  fleet([{ name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] }]);

describe("/upstream/{model}/…", () => {
  it("reaches the harness's own endpoint, with cortex's routing headers", async () => {
    const c = await withSmall();
    const res = await call(`${c.url}/upstream/chat-small/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
    expect(res.headers.get("x-cortex-node")).toBe("a");
    expect(res.headers.get("x-cortex-cold-start")).toBe("false");
    expect(res.headers.get("x-request-id")).toBeTruthy();
    // Counted like any request, and its slot given back.
    expect(await (await fetch(`${c.url}/metrics`)).text()).toContain(
      'cortex_requests_total{model="chat-small",node="a",status="200"} 1',
    );
    expect(c.dispatcher.reservations.total).toBe(0);
  });

  it("passes method, path, query, body and headers, but no credential, cookie or CORS header", async () => {
    const c = await withSmall();
    const res = await call(`${c.url}/upstream/chat-small/slots/0?action=save&x=%20y`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        cookie: "session=secret",
        "x-api-key": "another",
        "x-custom": "kept",
        "x-request-id": "req-1",
      },
      body: '{"filename":"slot.bin"}',
    });
    expect(res.status).toBe(200);
    const echo = (await res.json()) as Echo;
    expect(echo).toMatchObject({
      model: "chat-small",
      method: "POST",
      path: "/slots/0?action=save&x=%20y",
      body: '{"filename":"slot.bin"}',
    });
    expect(echo.headers).toMatchObject({
      authorization: `Bearer ${NEURON_TOKEN}`,
      "content-type": "application/json",
      "content-length": "23",
      "x-custom": "kept",
      "x-request-id": "req-1",
    });
    expect(echo.headers).not.toHaveProperty("cookie");
    expect(echo.headers).not.toHaveProperty("x-api-key");
    expect(res.headers.get("x-request-id")).toBe("req-1");
    expect(res.headers.get("x-harness")).toBe("fake");
    expect(res.headers.get("set-cookie")).toBeNull();
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it.each(["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])("passes %s as it is", async (method) => {
    const c = await withSmall();
    const res = await call(`${c.url}/upstream/chat-small/slots`, { method });
    expect(res.status).toBe(200);
    expect(((await res.json()) as Echo).method).toBe(method);
  });

  it("answers HEAD with the harness's head", async () => {
    const c = await withSmall();
    const res = await call(`${c.url}/upstream/chat-small/index.html`, { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-harness")).toBe("fake");
    expect(await res.text()).toBe("");
  });

  it("takes the longest model name at the head of the path, slashes included", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small"), resident("org")] },
    ]);
    const alias = (await (await call(`${c.url}/upstream/org/chat-small/props`)).json()) as Echo;
    expect(alias).toMatchObject({ model: "chat-small", path: "/props" });
    const shorter = (await (await call(`${c.url}/upstream/org/props`)).json()) as Echo;
    expect(shorter).toMatchObject({ model: "org", path: "/props" });
  });

  it("redirects /upstream/<model> to /upstream/<model>/, keeping a POST's method", async () => {
    const c = await withSmall();
    const get = await call(`${c.url}/upstream/org/chat-small?x=1`);
    expect(get.status).toBe(301);
    expect(get.headers.get("location")).toBe("/upstream/org/chat-small/?x=1");
    const post = await call(`${c.url}/upstream/chat-small`, { method: "POST", body: "{}" });
    expect(post.status).toBe(308);
    expect(post.headers.get("location")).toBe("/upstream/chat-small/");
    const root = (await (await call(`${c.url}/upstream/chat-small/`)).json()) as Echo;
    expect(root.path).toBe("/");
  });

  it("loads a model resident nowhere, and wakes one its neuron unloaded", async () => {
    const c = await fleet([
      {
        name: "a",
        devices: [gpu(0, 24_000)],
        models: [resident("org", { status: "unloaded" })],
      },
    ]);
    const cold = await call(`${c.url}/upstream/small/health`);
    expect(cold.status).toBe(200);
    expect(cold.headers.get("x-cortex-cold-start")).toBe("true");
    expect(neuron("a").loads.map((load) => load.model_id)).toEqual(["chat-small"]);
    const lazy = await call(`${c.url}/upstream/org/health`);
    expect(lazy.status).toBe(200);
    expect(lazy.headers.get("x-cortex-cold-start")).toBe("true");
    expect(neuron("a").loadsStarted.get("org")).toBe(1);
  });

  it("404s a path that names no model, in the OpenAI envelope", async () => {
    const c = await withSmall();
    for (const path of ["/upstream/nope/health", "/upstream/", "/upstream/chat-smal/x"]) {
      const res = await call(`${c.url}${path}`);
      expect(res.status).toBe(404);
      const body = await res.json();
      expect(openAIProblems("ErrorResponse", body)).toEqual([]);
      expect((body as { error: { code: string } }).error.code).toBe("model_not_found");
    }
  });

  it("refuses a missing or wrong key with 401 before anything else", async () => {
    const c = await withSmall();
    for (const key of [null, "wrong"]) {
      const res = await call(`${c.url}/upstream/chat-small/health`, {}, key);
      expect(res.status).toBe(401);
      expect((await errorOf(res)).code).toBe("invalid_api_key");
      expect((await call(`${c.url}/upstream/nope/health`, {}, key)).status).toBe(401);
    }
    // Every way a client key may come works here as on /v1.
    const res = await call(
      `${c.url}/upstream/chat-small/health`,
      { headers: { "x-api-key": KEY } },
      null,
    );
    expect(res.status).toBe(200);
  });

  it("refuses dot segments and encoded slashes with 400, sending nothing on", async () => {
    const c = await withSmall();
    for (const path of [
      "/upstream/chat-small/../../models/load",
      "/upstream/chat-small/%2e%2e/models",
      "/upstream/chat-small/./health",
      "/upstream/org%2Fchat-small/health",
      "/upstream/chat-small/a%5C..%5Cb",
    ]) {
      const res = await rawGet(c.url, path);
      expect(res.status, path).toBe(400);
      expect((JSON.parse(res.body) as { error: { code: string } }).error.code).toBe(
        "invalid_request_error",
      );
    }
    expect(neuron("a").inFlight("chat-small")).toBe(0);
    expect(c.dispatcher.reservations.total).toBe(0);
  });

  it("gives the slot back when the client leaves mid-answer", async () => {
    const c = await withSmall();
    const controller = new AbortController();
    const res = await call(`${c.url}/upstream/chat-small/hold`, { signal: controller.signal });
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    await res.body?.getReader().read();
    expect(c.dispatcher.reservations.total).toBe(1);
    expect(neuron("a").inFlight("chat-small")).toBe(1);
    controller.abort();
    await expect.poll(() => c.dispatcher.reservations.total).toBe(0);
    await expect.poll(() => neuron("a").inFlight("chat-small")).toBe(0);
  });

  it("sends a request that could not reach its neuron to another replica", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
      { name: "b", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    await neuron("a").kill();
    const nodes: (string | null)[] = [];
    for (let i = 0; i < 3; i += 1) {
      const res = await call(`${c.url}/upstream/chat-small/health`);
      expect(res.status).toBe(200);
      nodes.push(res.headers.get("x-cortex-node"));
    }
    expect(nodes).toEqual(["b", "b", "b"]);
  });

  it("refuses a body over the limit with 413", async () => {
    const c = await fleet(
      [{ name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] }],
      { max_body_mb: 1 },
    );
    const res = await call(`${c.url}/upstream/chat-small/x`, {
      method: "POST",
      body: "x".repeat(2 ** 20 + 1),
    });
    expect(res.status).toBe(413);
    expect(c.dispatcher.reservations.total).toBe(0);
  });
});
