import { describe, expect, it } from "vitest";
import { type ApiFailure, createClient, describeFailure, failureOf } from "./client.js";

describe("failureOf", () => {
  it("reads the OpenAI error envelope", () => {
    const failure = failureOf(
      503,
      JSON.stringify({
        error: { message: "no node fits", type: "x", code: "no_capacity", param: null },
      }),
    );
    expect(failure).toMatchObject({ status: 503, code: "no_capacity", message: "no node fits" });
    expect(describeFailure(failure)).toBe("no node fits (no_capacity, HTTP 503)");
  });

  it("falls back to the start of any other body, or the status", () => {
    expect(failureOf(502, "<html>Bad gateway</html>").message).toBe("<html>Bad gateway</html>");
    expect(failureOf(500, "").message).toBe("HTTP 500");
  });
});

describe("createClient", () => {
  it("sends the bearer token and JSON, and reports 401 to the app", async () => {
    const refused: ApiFailure[] = [];
    const seen: RequestInit[] = [];
    const client = createClient(
      "tok",
      (failure) => refused.push(failure),
      async (_input, init) => {
        seen.push(init ?? {});
        return seen.length === 1
          ? new Response('{"ok":true}', { status: 200 })
          : new Response('{"error":{"message":"bad token","code":"invalid_api_key"}}', {
              status: 401,
            });
      },
    );
    expect(await client.post("/api/models/load", { model: "m" })).toEqual({ ok: true });
    expect(seen[0]?.headers).toMatchObject({
      authorization: "Bearer tok",
      "content-type": "application/json",
    });
    expect(seen[0]?.body).toBe('{"model":"m"}');
    await expect(client.get("/api/fleet")).rejects.toMatchObject({ status: 401 });
    expect(refused.map((f) => f.code)).toEqual(["invalid_api_key"]);
  });

  it("says when cortex cannot be reached", async () => {
    const client = createClient(
      "",
      () => {},
      async () => {
        throw new TypeError("Failed to fetch");
      },
    );
    const error = await client.get("/api/fleet").catch((e: unknown) => e);
    expect(describeFailure(error)).toBe("cannot reach cortex: Failed to fetch");
  });
});
