import { request as httpRequest } from "node:http";
import { openAIProblems } from "@cortex/testkit/openai";
import { describe, expect, it } from "vitest";
import { gpu, KEY, post, resident, useCortexFleet } from "./cortex.fixtures.js";
import type { Cortex } from "./cortex.js";

// Bad input and auth in-process against fake neurons: malformed bodies answered with the
// OpenAI envelope, wrong keys and tokens, and paths that try to escape /v1 — none reach a neuron.

const { fleet, neuron } = useCortexFleet();

describe("bad input and auth", () => {
  it.each([
    ["{not json", 400, "invalid_request_error"],
    [JSON.stringify({ messages: [] }), 400, "missing_model"],
    [JSON.stringify({ model: 5 }), 400, "invalid_request_error"],
    [JSON.stringify([1, 2]), 400, "invalid_request_error"],
  ])("answers %s with %i %s", async (body, status, code) => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)] }]);
    const answer = await post(c, "/v1/chat/completions", body);
    expect(answer.status).toBe(status);
    const json = await answer.json();
    expect(openAIProblems("ErrorResponse", json)).toEqual([]);
    expect((json as { error: { code: string } }).error.code).toBe(code);
    expect(answer.headers.get("x-request-id")).toBeTruthy();
  });

  it("refuses a wrong client key on /v1 and a wrong admin token on /api", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)] }]);
    const refused = await post(c, "/v1/chat/completions", { model: "chat-small" }, "wrong");
    expect(refused.status).toBe(401);
    // A refusal carries its request id like every answer.
    expect(refused.headers.get("x-request-id")).toBeTruthy();
    expect((await fetch(`${c.url}/v1/models`)).status).toBe(401);
    expect(
      (await fetch(`${c.url}/api/fleet`, { headers: { authorization: `Bearer ${KEY}` } })).status,
    ).toBe(401);
    expect((await fetch(`${c.url}/health`)).status).toBe(200);
    expect(neuron("a").requests.size).toBe(0);
  });
});

/** A POST with the path exactly as given (fetch would resolve dot segments itself). */
const rawPost = (c: Cortex, path: string, body: unknown): Promise<number> =>
  new Promise((resolve, reject) => {
    const url = new URL(c.url);
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });

describe("paths", () => {
  it.each([
    "/v1/../models/load",
    "/v1/%2e%2e/models/unload",
    "/v1/chat/%2E%2E/%2e%2e/models/load",
    "/v1/a%2fb",
  ])("refuses %s without reaching a neuron", async (path) => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], models: [resident("chat-small")] },
    ]);
    expect(await rawPost(c, path, { model: "chat-small", model_id: "x" })).toBe(400);
    expect(neuron("a").loads).toHaveLength(0);
    expect(neuron("a").unloads).toHaveLength(0);
  });
});
