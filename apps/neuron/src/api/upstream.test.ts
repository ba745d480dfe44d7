import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { isUpstream, upstreamTarget } from "./upstream.js";

describe("upstreamTarget", () => {
  it.each([
    ["/upstream/m/health", { model: "m", path: "/health" }],
    ["/upstream/m/slots/0?action=save", { model: "m", path: "/slots/0?action=save" }],
    ["/upstream/m/", { model: "m", path: "/" }],
    ["/upstream/m", { model: "m", path: "/" }],
    ["/upstream/m?x=1", { model: "m", path: "/?x=1" }],
    ["/upstream/qwen3%3A8b/props", { model: "qwen3:8b", path: "/props" }],
    // The rest goes on as written, escapes included.
    ["/upstream/m/a%20b/c.js", { model: "m", path: "/a%20b/c.js" }],
  ])("%s → %j", (url, expected) => {
    expect(upstreamTarget(url)).toEqual(expected);
  });

  it.each([
    "/upstream/m/../models/load",
    "/upstream/m/%2e%2e/models/load",
    "/upstream/m/./health",
    "/upstream/../models",
    "/upstream/m/a%2Fb",
    "/upstream/m/a%5Cb",
    "/upstream/m\\..",
    "/upstream/m/%zz",
    "/upstream/",
    "/upstream//health",
  ])("refuses %s with 400", (url) => {
    expect(() => upstreamTarget(url)).toThrow(
      expect.objectContaining({ code: "invalid_request_error" }),
    );
  });
});

describe("isUpstream", () => {
  it.each([
    ["/upstream/m/health", true],
    ["/upstream/", true],
    ["/upstream", false],
    ["/v1/chat/completions", false],
  ])("%s → %s", (url, expected) => {
    expect(isUpstream({ method: "GET", url } as IncomingMessage)).toBe(expected);
  });
});
