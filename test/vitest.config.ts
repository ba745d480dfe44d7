import { defineProject, mergeConfig } from "vitest/config";
import { sharedTestConfig } from "../vitest.shared.js";

export default mergeConfig(
  sharedTestConfig,
  defineProject({
    test: {
      name: "e2e",
      // The AI SDK imports eventsource-parser, which publishes its TypeScript under the
      // "source" condition that these tests resolve with: Node would load that .ts and fail, so
      // Vite transforms that chain instead.
      server: { deps: { inline: ["ai", /@ai-sdk\//, "eventsource-parser"] } },
    },
  }),
);
