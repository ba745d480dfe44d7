import { type ErrorLog, errorHandler, notFound } from "@cortex/http-kit";
import express, { type Express, type RequestHandler, type Router } from "express";
import { requestId } from "./request-id.js";
import { dashboardDist, uiRoute } from "./ui-route.js";

export interface CortexAppOptions {
  readonly version: string;
  readonly startedAtMs: number;
  readonly openai: Router;
  readonly admin: Router;
  /** Ollama's API: eight paths under /api/, taken before the admin API sees them. */
  readonly ollama?: Router;
  readonly metrics: RequestHandler;
  readonly log: ErrorLog;
  /** The built dashboard served at /ui/; default: @cortex/dashboard's dist/ (503 if missing). */
  readonly dashboardDir?: string | null;
}

/**
 * Cortex's HTTP surface: health, metrics and the dashboard's files (open), the OpenAI API,
 * Ollama's API, the admin API.
 */
export const createCortexApp = (options: CortexAppOptions): Express => {
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");
  app.set("query parser", "simple");
  app.use(requestId);
  app.get("/health", (_req, res) => {
    res.json({
      status: "ok",
      version: options.version,
      uptime_s: (Date.now() - options.startedAtMs) / 1000,
    });
  });
  app.get("/metrics", options.metrics);
  app.use(
    uiRoute({
      distDir: options.dashboardDir === undefined ? dashboardDist() : options.dashboardDir,
    }),
  );
  app.use(options.openai);
  if (options.ollama) app.use(options.ollama);
  app.use(options.admin);
  app.use(notFound);
  app.use(errorHandler(options.log));
  return app;
};
