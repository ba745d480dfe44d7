import { describe, expect, it } from "vitest";
import { checkPath } from "./path-safety.js";

describe("checkPath", () => {
  it.each([
    "/upstream/m/health",
    "/upstream/org/m/props",
    "/upstream/m/a%20b",
    "/upstream/m/..a/b.",
    "/upstream/m/",
  ])("lets %s through", (path) => {
    expect(() => checkPath(path)).not.toThrow();
  });

  it.each([
    "/upstream/m/../models/load",
    "/upstream/m/./health",
    "/upstream/m/%2e%2e/models",
    "/upstream/m/%2E/x",
    "/upstream/m/..",
    "/upstream/org%2Fm/props",
    "/upstream/m/a%5Cb",
    "/upstream/m\\..\\x",
    "/upstream/m/%00",
    "/upstream/m/%zz",
  ])("refuses %s with 400", (path) => {
    expect(() => checkPath(path)).toThrow(
      expect.objectContaining({ code: "invalid_request_error" }),
    );
  });
});
