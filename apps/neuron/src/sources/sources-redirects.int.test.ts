import { once } from "node:events";
import { readFile, stat } from "node:fs/promises";
import type { Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  BODY,
  hub,
  ignore,
  sourcesFor,
  startHub,
  stored,
  TEST_CERT,
  TEST_KEY,
  useFakeHub,
} from "./sources.fixtures.js";

// Where a download may be redirected, and https sources, against a fake Hugging Face on
// loopback (see sources.fixtures.ts).

useFakeHub();

describe("redirects are held to the rules of a source", () => {
  /** Loads `${hub.url}/redirect-to` with hub.redirectTo as its Location; resolves to the error. */
  const refusedRedirect = async (location: string) => {
    hub.redirectTo = location;
    const error = await sourcesFor()
      .prepare(`${hub.url}/redirect-to`, ignore)
      .catch((caught: unknown) => caught);
    // The refused target was never contacted: the hub saw only the redirecting request.
    expect(hub.seen.map((seen) => seen.path)).toEqual(["/redirect-to"]);
    return error as Error & { code?: string };
  };

  it.each([
    [
      "http://0.0.0.0:PORT/cdn/file.gguf",
      /0\.0\.0\.0:\d+\/cdn\/file\.gguf: 0\.0\.0\.0 is not an address/,
    ],
    ["http://0:PORT/cdn/file.gguf", /0\.0\.0\.0 is not an address/],
    ["http://[::]:PORT/cdn/file.gguf", /\[::\] is not an address/],
    ["http://[::ffff:0.0.0.0]:PORT/cdn/file.gguf", /is not an address/],
    ["http://user:secret@127.0.0.1:PORT/cdn/file.gguf", /carries credentials/],
    ["file:///etc/passwd", /file:\/\/\/etc\/passwd: file: is not http\(s\)/],
  ])("refuses a redirect to %s without contacting it", async (template, reason) => {
    const error = await refusedRedirect(template.replace("PORT", new URL(hub.url).port));
    expect(error).toMatchObject({ name: "NeuronError", code: "load_failed" });
    expect(error.message).toMatch(/^downloading http:\/\/127\.0\.0\.1:\d+\/redirect-to failed: /);
    expect(error.message).toMatch(/refusing a redirect to /);
    expect(error.message).toMatch(reason);
    expect(error.message).not.toContain("secret");
  });

  it("lets a loopback source redirect to another loopback server", async () => {
    const mirror = await startHub();
    hub.redirectTo = `${mirror.url}/cdn/file.gguf`;
    const path = await sourcesFor().prepare(`${hub.url}/redirect-to`, ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(mirror.seen.map((seen) => seen.path)).toEqual(["/cdn/file.gguf"]);
  });

  it("gives up after 10 redirects", async () => {
    await expect(sourcesFor().prepare(`${hub.url}/loop`, ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringContaining("/loop failed: more than 10 redirects"),
    });
    expect(hub.seen).toHaveLength(11);
  });

  it("resumes a .partial through a redirect", async () => {
    const sources = sourcesFor();
    hub.mode = "cut";
    await expect(sources.prepare("hf:owner/repo/redirect.gguf", ignore)).rejects.toMatchObject({
      code: "load_failed",
    });
    const { size } = await stat(stored("redirect.gguf.partial"));
    hub.mode = "normal";
    const path = await sources.prepare("hf:owner/repo/redirect.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => [seen.path, seen.range])).toEqual([
      ["/owner/repo/resolve/main/redirect.gguf", undefined],
      ["/cdn/file.gguf", undefined],
      ["/owner/repo/resolve/main/redirect.gguf", `bytes=${size}-`],
      ["/cdn/file.gguf", `bytes=${size}-`],
    ]);
  });
});
describe("https sources", () => {
  let secure: Server;
  let secureUrl: string;
  const secureSeen: string[] = [];
  let previousTls: string | undefined;

  beforeEach(async () => {
    previousTls = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
    secureSeen.length = 0;
    secure = createHttpsServer({ key: TEST_KEY, cert: TEST_CERT }, (req, res) => {
      const path = req.url ?? "/";
      secureSeen.push(path);
      if (path === "/file.gguf") res.writeHead(200, { "content-length": BODY.length }).end(BODY);
      else if (path === "/same.gguf") res.writeHead(302, { location: "/file.gguf" }).end();
      else if (path === "/down.gguf") {
        res.writeHead(302, { location: `${hub.url}/cdn/file.gguf` }).end();
      } else res.writeHead(404).end();
    });
    secure.listen(0, "127.0.0.1");
    await once(secure, "listening");
    secureUrl = `https://127.0.0.1:${(secure.address() as { port: number }).port}`;
  });

  afterEach(async () => {
    if (previousTls === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = previousTls;
    secure.closeAllConnections();
    secure.close();
    await once(secure, "close");
  });

  it("follows a redirect that stays on https", async () => {
    const path = await sourcesFor().prepare(`${secureUrl}/same.gguf`, ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(secureSeen).toEqual(["/same.gguf", "/file.gguf"]);
  });

  it("never follows a redirect from https down to plain http, not even to loopback", async () => {
    await expect(sourcesFor().prepare(`${secureUrl}/down.gguf`, ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringMatching(
        /refusing a redirect to http:\/\/127\.0\.0\.1:\d+\/cdn\/file\.gguf: it downgrades https to plain http/,
      ),
    });
    expect(secureSeen).toEqual(["/down.gguf"]);
    expect(hub.seen).toEqual([]);
  });

  it.each(["0.0.0.0", "[::]"])("refuses https://%s as a source with 400", async (host) => {
    const port = new URL(secureUrl).port;
    await expect(
      sourcesFor().prepare(`https://${host}:${port}/file.gguf`, ignore),
    ).rejects.toMatchObject({
      code: "invalid_request_error",
      param: "source",
      message: expect.stringMatching(/is not an address one can connect to/),
    });
    expect(secureSeen).toEqual([]);
  });
});
