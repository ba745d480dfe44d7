import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

// The OpenAI schemas are copied from the team's shared contract so the package is
// self-contained; CI always has the contract beside the checkout, so drift fails here.
describe("openai-schemas.json", () => {
  it("matches the shared contract", () => {
    const shared = new URL("../../../../shared/openai-schemas.json", import.meta.url);
    expect(existsSync(shared), `expected the shared contract at ${shared.pathname}`).toBe(true);
    const copy = new URL("../openai-schemas.json", import.meta.url);
    expect(readFileSync(copy, "utf8")).toBe(readFileSync(shared, "utf8"));
  });
});
