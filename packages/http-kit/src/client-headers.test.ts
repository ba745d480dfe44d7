import { describe, expect, it } from "vitest";
import { forwardedHeaders } from "./client-headers.js";

describe("forwardedHeaders", () => {
  it("passes what describes the call", () => {
    const headers = {
      "content-type": "application/json",
      accept: "text/event-stream",
      "anthropic-version": "2023-06-01",
      "anthropic-beta": "tools-2024-04-04",
      "openai-beta": "assistants=v2",
      "x-session-id": "s1",
      "user-agent": "OpenAI/JS 6.30.1",
      "x-stainless-os": "Linux",
    };
    expect(forwardedHeaders(headers)).toEqual(headers);
  });

  it.each([
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "proxy-authorization",
    "proxy-connection",
    "proxy-anything",
    "host",
    "content-length",
    "expect",
    "accept-encoding",
    "authorization",
    "x-api-key",
    "api-key",
    "cookie",
    "x-request-id",
  ])("drops %s", (name) => {
    expect(forwardedHeaders({ [name]: "x", "x-kept": "1" })).toEqual({ "x-kept": "1" });
  });

  it("drops what the client's Connection header names, and nothing else", () => {
    expect(
      forwardedHeaders({
        connection: "keep-alive, X-Hop , close",
        "x-hop": "1",
        "x-kept": "2",
      }),
    ).toEqual({ "x-kept": "2" });
  });

  it("keeps repeated headers as node read them", () => {
    expect(forwardedHeaders({ "x-list": ["a", "b"] })).toEqual({ "x-list": ["a", "b"] });
  });
});
