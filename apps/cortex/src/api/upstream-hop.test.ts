import { describe, expect, it } from "vitest";
import { answerHeaders } from "./upstream-hop.js";

describe("answerHeaders", () => {
  it("passes what describes the harness's answer", () => {
    const headers = {
      "content-type": "text/html; charset=utf-8",
      "content-length": "1234",
      "content-encoding": "gzip",
      "cache-control": "no-cache",
      etag: '"abc"',
      "last-modified": "Sun, 15 Jun 2025 12:00:00 GMT",
      location: "/upstream/m/index.html",
      server: "llama.cpp",
      "x-harness": "fake",
    };
    expect(answerHeaders(headers)).toEqual(headers);
  });

  it.each([
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "proxy-authenticate",
    "proxy-connection",
    "set-cookie",
    "set-cookie2",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "x-request-id",
  ])("drops %s", (name) => {
    expect(answerHeaders({ [name]: "x", "x-kept": "1" })).toEqual({ "x-kept": "1" });
  });

  it("drops the headers the answer's Connection header names", () => {
    expect(answerHeaders({ connection: "keep-alive, X-Hop", "x-hop": "1", "x-kept": "2" })).toEqual(
      { "x-kept": "2" },
    );
  });
});
