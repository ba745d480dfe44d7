import { defineConfig } from "vite";

// Cortex serves the built files at /ui/ (apps/cortex/src/api/ui-route.ts). During development,
// `pnpm --filter @cortex/dashboard dev` serves the sources and sends the API to a local cortex.
export default defineConfig({
  base: "/ui/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
  server: { proxy: { "/api": "http://127.0.0.1:31313" } },
});
