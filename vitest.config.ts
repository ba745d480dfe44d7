import { defineConfig } from "vitest/config";

// One run over every workspace package, so CI gets a single pass/fail count.
export default defineConfig({
  test: {
    projects: ["packages/*", "apps/*", "test"],
  },
});
