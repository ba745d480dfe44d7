import { describe, expect, it } from "vitest";
import { canSignOut } from "./session.js";

describe("canSignOut", () => {
  it("offers Sign out only for a token the operator typed", () => {
    expect(canSignOut("change-me")).toBe(true);
    expect(canSignOut("")).toBe(false);
  });
});
