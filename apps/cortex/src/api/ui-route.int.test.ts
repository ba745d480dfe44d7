import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireBearer, silentLog } from "@cortex/http-kit";
import express from "express";
import { afterEach, describe, expect, it } from "vitest";
import { createCortexApp } from "./app.js";
import { dashboardDist } from "./ui-route.js";

// The dashboard's files at /ui/ on loopback, through cortex's whole app, from a temporary dist.

const INDEX = '<!doctype html><title>Cortex</title><div id="app"></div><!-- test index -->';
const SCRIPT = "console.log('dashboard');";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const tempDir = async (): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), "cortex-ui-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
};

/** A built dashboard: index.html and two hashed assets, with a secret beside dist/. */
const builtDist = async (): Promise<string> => {
  const root = await tempDir();
  const dist = join(root, "dist");
  await mkdir(join(dist, "assets"), { recursive: true });
  await writeFile(join(dist, "index.html"), INDEX);
  await writeFile(join(dist, "assets", "index-AbC123.js"), SCRIPT);
  await writeFile(join(dist, "assets", "index-AbC123.css"), "body{margin:0}");
  await writeFile(join(root, "secret.txt"), "do not serve");
  return dist;
};

const start = async (dashboardDir: string | null): Promise<string> => {
  const admin = express.Router();
  admin.use("/api", requireBearer("admin-secret"));
  admin.get("/api/fleet", (_req, res) => {
    res.json({ nodes: [] });
  });
  const app = createCortexApp({
    version: "test",
    startedAtMs: Date.now(),
    openai: express.Router(),
    admin,
    metrics: (_req, res) => {
      res.end();
    },
    log: silentLog,
    dashboardDir,
  });
  const server: Server = await new Promise((resolve) => {
    const listening = app.listen(0, "127.0.0.1", () => resolve(listening));
  });
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};

const get = (url: string, init: RequestInit = {}) => fetch(url, { redirect: "manual", ...init });

describe("GET /ui: happy path", () => {
  it("redirects /ui to /ui/, keeping the query", async () => {
    const base = await start(await builtDist());
    const plain = await get(`${base}/ui`);
    expect(plain.status).toBe(308);
    expect(plain.headers.get("location")).toBe("/ui/");
    const query = await get(`${base}/ui?tab=fleet`);
    expect(query.headers.get("location")).toBe("/ui/?tab=fleet");
  });

  it("serves index.html at /ui/ without a token, never cached, with a content security policy", async () => {
    const base = await start(await builtDist());
    const response = await get(`${base}/ui/`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/html/);
    expect(response.headers.get("cache-control")).toBe("no-cache");
    expect(response.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(response.headers.get("x-request-id")).toBeTruthy();
    expect(await response.text()).toBe(INDEX);
    const head = await get(`${base}/ui/`, { method: "HEAD" });
    expect(head.status).toBe(200);
  });

  it("serves hashed assets with their content type, cached for good", async () => {
    const base = await start(await builtDist());
    const script = await get(`${base}/ui/assets/index-AbC123.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toMatch(
      /^text\/javascript|^application\/javascript/,
    );
    expect(script.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(script.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await script.text()).toBe(SCRIPT);
    const style = await get(`${base}/ui/assets/index-AbC123.css`);
    expect(style.headers.get("content-type")).toMatch(/^text\/css/);
  });

  it("answers any other path below /ui/ with the app (deep links, reloads)", async () => {
    const base = await start(await builtDist());
    for (const path of ["/ui/models", "/ui/fleet/gpu-a", "/ui/index.html"]) {
      const response = await get(`${base}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get("cache-control"), path).toBe("no-cache");
      expect(await response.text(), path).toBe(INDEX);
    }
  });

  it("finds @cortex/dashboard's dist through the workspace dependency", () => {
    expect(dashboardDist()).toMatch(/apps[/\\]dashboard[/\\]dist$/);
  });
});

describe("GET /ui: errors", () => {
  it("answers a missing asset with a 404 envelope, not the app", async () => {
    const base = await start(await builtDist());
    const response = await get(`${base}/ui/assets/index-gone.js`);
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { code: "not_found" } });
  });

  it.each([
    ["an empty dist directory", async () => tempDir()],
    ["no dashboard package", async () => null],
  ])("answers 503 with an envelope that says to build, for %s", async (_name, dir) => {
    const base = await start(await dir());
    for (const path of ["/ui/", "/ui/assets/index-AbC123.js"]) {
      const response = await get(`${base}${path}`);
      expect(response.status, path).toBe(503);
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("service_unavailable");
      expect(body.error.message).toContain("pnpm build");
    }
    // The rest of cortex is unaffected.
    expect((await get(`${base}/health`)).status).toBe(200);
  });

  it("does not answer other methods", async () => {
    const base = await start(await builtDist());
    const response = await get(`${base}/ui/`, { method: "POST", body: "{}" });
    expect(response.status).toBe(404);
  });
});

describe("GET /ui: security", () => {
  it.each(["/ui/..%2fsecret.txt", "/ui/%2e%2e/secret.txt", "/ui/assets/..%2f..%2fsecret.txt"])(
    "never serves a file outside dist (%s)",
    async (path) => {
      const base = await start(await builtDist());
      const response = await get(`${base}${path}`);
      expect(await response.text()).not.toContain("do not serve");
    },
  );

  it("keeps the admin API behind its token while the files are open", async () => {
    const base = await start(await builtDist());
    expect((await get(`${base}/ui/`)).status).toBe(200);
    expect((await get(`${base}/api/fleet`)).status).toBe(401);
    const authorized = await get(`${base}/api/fleet`, {
      headers: { authorization: "Bearer admin-secret" },
    });
    expect(authorized.status).toBe(200);
  });

  it("does not serve dotfiles", async () => {
    const dist = await builtDist();
    await writeFile(join(dist, ".env"), "SECRET=1");
    const base = await start(dist);
    const response = await get(`${base}/ui/.env`);
    expect(await response.text()).not.toContain("SECRET");
  });
});
