import { describe, expect, it } from "vitest";
import { answerHeaders } from "./upstream.js";

// The answer headers a proxy passes on whole (`/upstream/…` in cortex and the neuron).

describe("answerHeaders", () => {
  it("drops what the caller's filter refuses too", () => {
    expect(answerHeaders({ "x-a": "1", "x-b": "2" }, (name) => name === "x-a")).toEqual({
      "x-b": "2",
    });
  });

  it("passes the harness's headers but hop-by-hop ones and cookies", () => {
    expect(
      answerHeaders({
        "content-type": "text/html",
        "content-length": "10",
        "access-control-allow-origin": "*",
        server: "llama.cpp",
        connection: "keep-alive",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        "set-cookie": ["a=1"],
        "proxy-authenticate": "Basic",
      }),
    ).toEqual({
      "content-type": "text/html",
      "content-length": "10",
      "access-control-allow-origin": "*",
      server: "llama.cpp",
    });
  });

  it("drops the headers the answer's Connection header names", () => {
    expect(answerHeaders({ connection: "X-Hop", "x-hop": "1", "x-kept": "2" })).toEqual({
      "x-kept": "2",
    });
  });
});
