import { EventEmitter, once } from "node:events";
import { mkdir, mkdtemp, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { LoadProgress } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ProgressListener } from "../models/model-manager.js";
import { type LocalSourcesOptions, localSources } from "./preparer.js";

// The preparer against a fake Hugging Face on loopback: real HTTP, real files, real sockets cut
// halfway. Every server is closed in afterEach.

const TOKEN = "hf_test_secret_token";
const BODY = Buffer.alloc(1 << 20);
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 7 + (i >> 9)) & 0xff;

/** What a full (non-Range) answer for the model file does. */
type Mode = "normal" | "cut" | "hold" | "ignore-range" | "wrong-total";

interface Seen {
  readonly path: string;
  readonly range: string | undefined;
  readonly authorization: string | undefined;
}

interface FakeHub {
  readonly url: string;
  readonly seen: Seen[];
  /** Emits `request` (Seen) on every request and `aborted` when a client leaves mid-body. */
  readonly events: EventEmitter;
  mode: Mode;
  /** Where `/owner/repo/resolve/main/away.gguf` redirects (another origin). */
  awayTo: string;
  /** Where `/redirect-to` redirects, verbatim (any Location a server could send). */
  redirectTo: string;
  /** Lets every held answer finish. */
  release(): void;
  close(): Promise<void>;
}

const servers: FakeHub[] = [];

const startHub = async (): Promise<FakeHub> => {
  const held: (() => void)[] = [];
  const server: Server = createServer();
  const hub: FakeHub = {
    url: "",
    seen: [],
    events: new EventEmitter(),
    mode: "normal",
    awayTo: "",
    redirectTo: "",
    release: () => {
      for (const finish of held.splice(0)) finish();
    },
    close: async () => {
      hub.release();
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };

  const serveFile = (req: IncomingMessage, res: ServerResponse) => {
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range && hub.mode !== "ignore-range") {
      const start = Number(range[1]);
      if (start >= BODY.length) {
        res.writeHead(416, { "content-range": `bytes */${BODY.length}` }).end();
        return;
      }
      res.writeHead(206, {
        "content-length": BODY.length - start,
        // wrong-total: the advertised size disagrees with the bytes that really follow.
        "content-range": `bytes ${start}-${BODY.length - 1}/${BODY.length + (hub.mode === "wrong-total" ? 10 : 0)}`,
      });
      res.end(BODY.subarray(start));
      return;
    }
    res.writeHead(200, {
      "content-length": BODY.length,
      "content-type": "application/octet-stream",
    });
    const half = BODY.length / 2;
    if (hub.mode === "cut") {
      res.write(BODY.subarray(0, half), () => req.socket.destroy());
    } else if (hub.mode === "hold") {
      res.write(BODY.subarray(0, half));
      held.push(() => {
        if (!res.destroyed) res.end(BODY.subarray(half));
      });
    } else {
      res.end(BODY);
    }
  };

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const seen = { path, range: req.headers.range, authorization: req.headers.authorization };
    hub.seen.push(seen);
    res.on("close", () => {
      if (!res.writableFinished) hub.events.emit("aborted", seen);
    });
    hub.events.emit("request", seen);
    if (/^\/owner\/repo\/resolve\/[^/]+\/file\.gguf$/.test(path) || path === "/cdn/file.gguf") {
      serveFile(req, res);
    } else if (path === "/owner/repo/resolve/main/redirect.gguf") {
      res.writeHead(302, { location: "/cdn/file.gguf?X-Amz-Signature=abc" }).end();
    } else if (path === "/owner/repo/resolve/main/away.gguf") {
      res.writeHead(302, { location: `${hub.awayTo}/cdn/file.gguf` }).end();
    } else if (path === "/redirect-to") {
      res.writeHead(302, { location: hub.redirectTo }).end();
    } else if (path === "/loop") {
      res.writeHead(307, { location: "/loop" }).end();
    } else if (path === "/owner/repo/resolve/main/ftp.gguf") {
      res.writeHead(302, { location: "ftp://127.0.0.1/file.gguf" }).end();
    } else if (path === "/owner/gated/resolve/main/file.gguf") {
      if (req.headers.authorization === `Bearer ${TOKEN}`) serveFile(req, res);
      else res.writeHead(401, { "content-type": "text/plain" }).end("unauthorized");
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  Object.assign(hub, { url: `http://127.0.0.1:${port}` });
  servers.push(hub);
  return hub;
};

let dir: string;
let hub: FakeHub;

const sourcesFor = (options: Partial<LocalSourcesOptions> = {}) =>
  localSources({ modelsDir: dir, hfEndpoint: hub.url, ...options });

const stored = (...parts: string[]) => join(dir, "hf", "owner", "repo", "main", ...parts);

/** A listener that records every event and resolves `reached` once `predicate` holds. */
const recorder = (predicate: (progress: LoadProgress) => boolean = () => true) => {
  const events: LoadProgress[] = [];
  let reach = () => {};
  const reached = new Promise<void>((resolve) => {
    reach = resolve;
  });
  const listener: ProgressListener = (progress) => {
    events.push(progress);
    if (predicate(progress)) reach();
  };
  return { events, listener, reached };
};

const ignore = () => {};

beforeEach(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "neuron-sources-int-")));
  hub = await startHub();
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await rm(dir, { recursive: true, force: true });
});

describe("downloads from a fake Hugging Face", () => {
  it("stores an hf: file under models_dir/hf and reports growing progress with the total", async () => {
    const progress = recorder();
    const path = await sourcesFor().prepare("hf:owner/repo/file.gguf", progress.listener);

    expect(path).toBe(stored("file.gguf"));
    expect((await readFile(path)).equals(BODY)).toBe(true);
    await expect(stat(`${path}.partial`)).rejects.toMatchObject({ code: "ENOENT" });
    expect(hub.seen).toEqual([
      { path: "/owner/repo/resolve/main/file.gguf", range: undefined, authorization: undefined },
    ]);

    const { events } = progress;
    expect(events.length).toBeGreaterThanOrEqual(2);
    for (const event of events) {
      expect(event).toMatchObject({ phase: "downloading", total: BODY.length });
      expect(event.message).toContain("/owner/repo/resolve/main/file.gguf");
    }
    const bytes = events.map((event) => event.bytes ?? -1);
    expect(bytes).toEqual([...bytes].sort((a, b) => a - b));
    expect(new Set(bytes).size).toBe(bytes.length);
    expect(bytes.at(-1)).toBe(BODY.length);
  });

  it("keeps a pinned revision apart from main", async () => {
    const path = await sourcesFor().prepare("hf:owner/repo@v2/file.gguf", ignore);
    expect(path).toBe(join(dir, "hf", "owner", "repo", "v2", "file.gguf"));
    expect(hub.seen.map((seen) => seen.path)).toEqual(["/owner/repo/resolve/v2/file.gguf"]);
  });

  it("uses a file already present without any request", async () => {
    await mkdir(dirname(stored("file.gguf")), { recursive: true });
    await writeFile(stored("file.gguf"), "already here");
    const path = await sourcesFor().prepare("hf:owner/repo/file.gguf", ignore);
    expect(path).toBe(stored("file.gguf"));
    expect(await readFile(path, "utf8")).toBe("already here");
    expect(hub.seen).toEqual([]);
  });

  it("follows a redirect to the CDN path, keeping the file name of the source", async () => {
    const path = await sourcesFor({ hfToken: TOKEN }).prepare(
      "hf:owner/repo/redirect.gguf",
      ignore,
    );
    expect(path).toBe(stored("redirect.gguf"));
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.path)).toEqual([
      "/owner/repo/resolve/main/redirect.gguf",
      "/cdn/file.gguf",
    ]);
  });

  it("refuses a redirect to a scheme other than http(s)", async () => {
    await expect(sourcesFor().prepare("hf:owner/repo/ftp.gguf", ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringMatching(/refusing a redirect to ftp:/),
    });
  });

  it("answers a 404 with load_failed naming the URL and what to check, never the token", async () => {
    const error = await sourcesFor({ hfToken: TOKEN })
      .prepare("hf:owner/repo/missing.gguf", ignore)
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ name: "NeuronError", code: "load_failed" });
    const { message } = error as Error;
    expect(message).toContain(`downloading ${hub.url}/owner/repo/resolve/main/missing.gguf failed`);
    expect(message).toContain("HTTP 404");
    expect(message).toContain("check the owner, repository, revision and file name");
    expect(message).not.toContain(TOKEN);
    await expect(stat(stored("missing.gguf"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("sends the bearer token to hf_endpoint, and says to set HF_TOKEN when it is missing", async () => {
    await expect(sourcesFor().prepare("hf:owner/gated/file.gguf", ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringMatching(/HTTP 401 .*set HF_TOKEN/),
    });
    const path = await sourcesFor({ hfToken: TOKEN }).prepare("hf:owner/gated/file.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.authorization)).toEqual([undefined, `Bearer ${TOKEN}`]);
  });

  it("never sends the token to other hosts: not to plain URLs, not after a redirect away", async () => {
    const cdn = await startHub();
    hub.awayTo = cdn.url;
    const sources = sourcesFor({ hfToken: TOKEN });

    await sources.prepare(`${hub.url}/cdn/file.gguf`, ignore);
    expect(hub.seen).toEqual([
      { path: "/cdn/file.gguf", range: undefined, authorization: undefined },
    ]);

    const path = await sources.prepare("hf:owner/repo/away.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen[1]).toMatchObject({ authorization: `Bearer ${TOKEN}` });
    expect(cdn.seen).toEqual([
      { path: "/cdn/file.gguf", range: undefined, authorization: undefined },
    ]);
  });

  it("stores plain URLs under models_dir/downloads/<host>/<path>", async () => {
    const path = await sourcesFor().prepare(`${hub.url}/cdn/file.gguf`, ignore);
    const host = hub.url.slice("http://".length).replace(":", "_");
    expect(path).toBe(join(dir, "downloads", host, "cdn", "file.gguf"));
  });

  it("reports a refused connection as load_failed with the error code", async () => {
    const gone = await startHub();
    await gone.close();
    await expect(sourcesFor().prepare(`${gone.url}/cdn/file.gguf`, ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringMatching(
        /downloading http:\/\/127\.0\.0\.1:\d+\/cdn\/file\.gguf failed: ECONNREFUSED/,
      ),
    });
  });
});

describe("resume", () => {
  it("keeps the .partial of a cut download and resumes it with Range", async () => {
    const sources = sourcesFor();
    hub.mode = "cut";
    await expect(sources.prepare("hf:owner/repo/file.gguf", ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringContaining("downloading"),
    });
    await expect(stat(stored("file.gguf"))).rejects.toMatchObject({ code: "ENOENT" });
    const { size } = await stat(stored("file.gguf.partial"));
    expect(size).toBeGreaterThan(0);
    expect(size).toBeLessThan(BODY.length);

    hub.mode = "normal";
    const progress = recorder();
    const path = await sources.prepare("hf:owner/repo/file.gguf", progress.listener);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.range)).toEqual([undefined, `bytes=${size}-`]);
    expect(progress.events[0]).toMatchObject({ bytes: size, total: BODY.length });
    expect(progress.events.at(-1)).toMatchObject({ bytes: BODY.length, total: BODY.length });
    await expect(stat(`${path}.partial`)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("starts over when the server ignores Range and answers 200", async () => {
    await mkdir(dirname(stored("file.gguf")), { recursive: true });
    await writeFile(stored("file.gguf.partial"), "stale bytes that must go");
    hub.mode = "ignore-range";
    const path = await sourcesFor().prepare("hf:owner/repo/file.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.range)).toEqual(["bytes=24-"]);
  });

  it("treats a complete .partial as done when the server answers 416", async () => {
    await mkdir(dirname(stored("file.gguf")), { recursive: true });
    await writeFile(stored("file.gguf.partial"), BODY);
    const path = await sourcesFor().prepare("hf:owner/repo/file.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.range)).toEqual([`bytes=${BODY.length}-`]);
  });

  it("restarts when a 416 says the .partial has the wrong size", async () => {
    await mkdir(dirname(stored("file.gguf")), { recursive: true });
    await writeFile(stored("file.gguf.partial"), Buffer.concat([BODY, Buffer.from("extra")]));
    const path = await sourcesFor().prepare("hf:owner/repo/file.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.range)).toEqual([`bytes=${BODY.length + 5}-`, undefined]);
  });

  it("never renames a file whose size disagrees with the advertised total", async () => {
    await mkdir(dirname(stored("file.gguf")), { recursive: true });
    await writeFile(stored("file.gguf.partial"), BODY.subarray(0, 1000));
    hub.mode = "wrong-total";
    await expect(sourcesFor().prepare("hf:owner/repo/file.gguf", ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringContaining(`ended after ${BODY.length} of ${BODY.length + 10} bytes`),
    });
    await expect(stat(stored("file.gguf"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("fails a download that stalls longer than the idle timeout, keeping the .partial", async () => {
    hub.mode = "hold";
    await expect(
      sourcesFor({ idleTimeoutMs: 300 }).prepare("hf:owner/repo/file.gguf", ignore),
    ).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringMatching(/file\.gguf failed: no data for 0\.3 s/),
    });
    expect((await stat(stored("file.gguf.partial"))).size).toBeGreaterThan(0);
    await expect(stat(stored("file.gguf"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("single flight", () => {
  it("shares one request among concurrent callers, each getting progress", async () => {
    const sources = sourcesFor();
    const callers = [recorder(), recorder(), recorder()];
    const paths = await Promise.all(
      callers.map((caller) => sources.prepare("hf:owner/repo/file.gguf", caller.listener)),
    );
    expect(paths).toEqual(Array(3).fill(stored("file.gguf")));
    expect(hub.seen).toHaveLength(1);
    for (const caller of callers) {
      expect(caller.events.at(-1)).toMatchObject({ bytes: BODY.length, total: BODY.length });
    }
  });

  it("lets one caller give up while the others still get the file", async () => {
    hub.mode = "hold";
    const sources = sourcesFor();
    const quitter = recorder((progress) => (progress.bytes ?? 0) > 0);
    const stayer = recorder();
    const controller = new AbortController();
    const quitting = sources.prepare(
      "hf:owner/repo/file.gguf",
      quitter.listener,
      controller.signal,
    );
    const staying = sources.prepare("hf:owner/repo/file.gguf", stayer.listener);
    await quitter.reached;

    controller.abort();
    await expect(quitting).rejects.toMatchObject({ name: "AbortError" });
    hub.release();
    const path = await staying;

    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen).toHaveLength(1);
    expect(stayer.events.at(-1)).toMatchObject({ bytes: BODY.length });
    expect(quitter.events.at(-1)?.bytes).toBeLessThan(BODY.length);
  });

  it("stops the transfer when the last caller leaves, and the next one resumes the .partial", async () => {
    hub.mode = "hold";
    const sources = sourcesFor();
    const first = recorder((progress) => (progress.bytes ?? 0) > 0);
    const controller = new AbortController();
    const leaving = sources.prepare("hf:owner/repo/file.gguf", first.listener, controller.signal);
    await first.reached;

    const aborted = once(hub.events, "aborted");
    controller.abort();
    await expect(leaving).rejects.toMatchObject({ name: "AbortError" });
    await aborted;

    hub.mode = "normal";
    const path = await sources.prepare("hf:owner/repo/file.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen).toHaveLength(2);
    expect(hub.seen[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
  });
});

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

// A self-signed certificate for 127.0.0.1, for tests only (openssl req -x509 -newkey ec
// -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500 -subj /CN=127.0.0.1
// -addext subjectAltName=IP:127.0.0.1,DNS:localhost). fetch is told to accept it through
// NODE_TLS_REJECT_UNAUTHORIZED, set only while these tests run.
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyCPIf4NUnei9kgTD
aqUHiWopw1grdyHobyLaPYpNNkyhRANCAATGJZ14S9QWRGtELajRXRex+kTVRfdt
ygJMbCww+nyjuWU7Nvf7shE0rRG16jKX1B7Dly/I4BU7uORd9xzAqYHH
-----END PRIVATE KEY-----
`;
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBnDCCAUGgAwIBAgIUB4bkYihtgMSzXTv09NWTNg9RQ+0wCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTIwNzE4MzU1MVoYDzIxMjYxMTEz
MTgzNTUxWjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATGJZ14S9QWRGtELajRXRex+kTVRfdtygJMbCww+nyjuWU7Nvf7shE0
rRG16jKX1B7Dly/I4BU7uORd9xzAqYHHo28wbTAdBgNVHQ4EFgQUihX47QAtnFlW
n6VTOGl0iUNw8gMwHwYDVR0jBBgwFoAUihX47QAtnFlWn6VTOGl0iUNw8gMwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSQAwRgIhANl7c/qiH1+70v4rQ4w752MkUzpqeb3rpBnslvsqO3gXAiEA
hGwRFZvQaYF7WbOSK+mwV/em5OOJfn7uqqQ0XBEsS90=
-----END CERTIFICATE-----
`;

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
