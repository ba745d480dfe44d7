import { defineConfig } from "vitest/config";

// Workspace packages export a "source" condition pointing at their TypeScript, so tests
// run against the sources of their dependencies without a build in between.
export const sharedTestConfig = defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"], externalConditions: ["source"] } },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts", "bench/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
