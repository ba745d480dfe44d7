import { defineConfig } from "vitest/config";

// One run over every workspace package, so CI gets a single pass/fail count. CI asks for a
// JSON report as well (VITEST_JSON_REPORT=path) and prints the totals from it.
const jsonReport = process.env.VITEST_JSON_REPORT;

export default defineConfig({
  test: {
    projects: ["packages/*/vitest.config.ts", "apps/*/vitest.config.ts", "test/vitest.config.ts"],
    reporters: jsonReport ? ["default", ["json", { outputFile: jsonReport }]] : ["default"],
  },
});
