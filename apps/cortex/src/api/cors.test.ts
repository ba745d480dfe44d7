import { describe, expect, it } from "vitest";
import { requestedHeaders } from "./cors.js";

describe("requestedHeaders", () => {
  it.each([
    [undefined, ""],
    ["", ""],
    ["Authorization, Content-Type", "authorization, content-type"],
    ["x-api-key,anthropic-version ,  openai-beta", "x-api-key, anthropic-version, openai-beta"],
    ["bad name, x-ok, (nope), , x-too", "x-ok, x-too"],
  ])("allows %j as %j", (asked, allowed) => {
    expect(requestedHeaders(asked)).toBe(allowed);
  });

  it("is bounded in count and size", () => {
    const many = Array.from({ length: 500 }, (_, i) => `x-h${i}`).join(", ");
    expect(requestedHeaders(many).split(", ")).toHaveLength(64);
    const long = Array.from({ length: 10 }, (_, i) => `x-${String(i).repeat(1000)}`).join(",");
    expect(requestedHeaders(long).length).toBeLessThanOrEqual(4096);
  });
});
