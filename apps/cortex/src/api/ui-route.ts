import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, sep } from "node:path";
import { ApiError, sendError } from "@cortex/http-kit";
import express, { type Router } from "express";

// The dashboard (apps/dashboard, built by `pnpm build`) as static files under /ui/. The files
// need no token: everything they show comes from the admin API, which does. Vite names every
// asset by its content hash, so assets are cached for good and index.html never is.

/** Where @cortex/dashboard's build lands; null when the package cannot be found at all. */
export const dashboardDist = (): string | null => {
  try {
    const manifest = createRequire(import.meta.url).resolve("@cortex/dashboard/package.json");
    return join(dirname(manifest), "dist");
  } catch {
    return null;
  }
};

const INDEX = "index.html";
const IMMUTABLE = "public, max-age=31536000, immutable";
/** The app loads only its own files and talks only to this cortex. */
const CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

export interface UiRouteOptions {
  /** The built dashboard; null or a directory without index.html answers 503. */
  readonly distDir: string | null;
}

export const uiRoute = (options: UiRouteOptions): Router => {
  const { distDir } = options;
  const router = express.Router({ strict: true });
  const files =
    distDir === null
      ? null
      : express.static(distDir, {
          index: false,
          redirect: false,
          fallthrough: true,
          setHeaders: (res, path) => {
            res.setHeader("X-Content-Type-Options", "nosniff");
            res.setHeader(
              "Cache-Control",
              path.startsWith(join(distDir, "assets") + sep) ? IMMUTABLE : "no-cache",
            );
          },
        });

  // Relative asset URLs in index.html only work below /ui/.
  router.get("/ui", (req, res) => {
    const query = req.originalUrl.indexOf("?");
    res.redirect(308, `/ui/${query === -1 ? "" : req.originalUrl.slice(query)}`);
  });

  router.use("/ui/", (req, res, next) => {
    if (req.method !== "GET" && req.method !== "HEAD") return next();
    const index = distDir === null ? null : join(distDir, INDEX);
    // Checked on every request, so a build made while cortex runs is picked up without a restart.
    if (files === null || index === null || !existsSync(index)) {
      sendError(
        res,
        new ApiError(
          "service_unavailable",
          "the dashboard is not built: run `pnpm build` (it writes apps/dashboard/dist) and reload",
        ),
      );
      return;
    }
    if (req.path === `/${INDEX}`) return sendIndex(res, index);
    files(req, res, () => {
      // A hashed asset that does not exist is a 404, not the app; any other path is one of the
      // app's own (a bookmarked #tab, a reload) and gets index.html.
      if (req.path.startsWith("/assets/")) return next();
      sendIndex(res, index);
    });
  });

  return router;
};

const sendIndex = (res: express.Response, index: string): void => {
  res.setHeader("Cache-Control", "no-cache");
  res.setHeader("Content-Security-Policy", CSP);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.type("html").sendFile(index);
};
