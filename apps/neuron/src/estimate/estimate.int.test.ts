import { once } from "node:events";
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { buildTinyModel } from "@cortex/harness-llamacpp";
import type { EstimateRequest } from "@cortex/protocol";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { testHarnesses } from "./estimate.fixtures.js";
import { type EstimatorOptions, modelEstimator } from "./estimator.js";

// Remote sources against file servers on loopback that count what they send: the header is read
// by range requests, through the download's redirect and token rules, and the file is never
// downloaded.

const TOKEN = "hf_estimate_secret";
/** About 30 MB: the 2 MB first range, all the header needs, is well under a tenth of it. */
const MODEL = buildTinyModel({
  shape: { embeddingLength: 256, feedForwardLength: 512, blockCount: 12 },
});

interface FileServer {
  readonly url: string;
  /** Requests seen: path, Range and Authorization. */
  readonly seen: { path: string; range?: string; authorization?: string }[];
  /** Bytes of the model written to clients. */
  sent: number;
  /** Where `/redirect/…` points, another server's origin. */
  redirectTo: string;
  close(): Promise<void>;
}

const servers: FileServer[] = [];

/** Writes `bytes` in 64 KB pieces, waiting for the socket to drain: `sent` counts what left. */
const stream = async (res: ServerResponse, bytes: Buffer, server: FileServer) => {
  for (let at = 0; at < bytes.length && !res.destroyed; at += 65_536) {
    const piece = bytes.subarray(at, at + 65_536);
    const drained = res.write(piece);
    server.sent += piece.length;
    if (!drained) await Promise.race([once(res, "drain"), once(res, "close")]);
  }
  if (!res.destroyed) res.end();
};

const startServer = async (): Promise<FileServer> => {
  const http: Server = createServer();
  const server: FileServer = {
    url: "",
    seen: [],
    sent: 0,
    redirectTo: "",
    close: async () => {
      http.closeAllConnections();
      http.close();
      await once(http, "close");
    },
  };
  const serveRange = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    if (!range) {
      res.writeHead(200, { "content-length": body.length });
      void stream(res, body, server);
      return;
    }
    const start = Number(range[1]);
    if (start >= body.length) {
      res.writeHead(416, { "content-range": `bytes */${body.length}` }).end();
      return;
    }
    const end = Math.min(Number(range[2]), body.length - 1);
    const part = body.subarray(start, end + 1);
    res.writeHead(206, {
      "content-length": part.length,
      "content-range": `bytes ${start}-${end}/${body.length}`,
    });
    void stream(res, part, server);
  };
  http.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    server.seen.push({
      path,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
    if (path === "/files/model.gguf") serveRange(req, res, MODEL);
    else if (path === "/files/notes.gguf")
      serveRange(req, res, Buffer.from("not a model\n".repeat(1000)));
    else if (path === "/no-range/model.gguf") {
      res.writeHead(200, { "content-length": MODEL.length });
      void stream(res, MODEL, server);
    } else if (path === "/owner/repo/resolve/main/model.gguf") {
      // Like the Hub: the token is checked here, then a redirect to a CDN on another origin.
      if (req.headers.authorization !== `Bearer ${TOKEN}`) res.writeHead(401).end();
      else res.writeHead(302, { location: `${server.redirectTo}/files/model.gguf?sig=x` }).end();
    } else if (path === "/hold/model.gguf") {
      // Answers nothing: the estimate's deadline ends the wait.
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    }
  });
  http.listen(0, "127.0.0.1");
  await once(http, "listening");
  Object.assign(server, { url: `http://127.0.0.1:${(http.address() as { port: number }).port}` });
  servers.push(server);
  return server;
};

/** A loopback port that was free a moment ago and has no listener now. */
const closedPort = async (): Promise<number> => {
  const probe = createNetServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, "close");
  return port;
};

let dir: string;
let hub: FileServer;
let cdn: FileServer;

beforeAll(async () => {
  hub = await startServer();
  cdn = await startServer();
  hub.redirectTo = cdn.url;
});

afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

beforeEach(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "neuron-estimate-int-")));
  for (const server of servers) {
    server.seen.length = 0;
    server.sent = 0;
  }
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const estimator = (options: Partial<EstimatorOptions> = {}) =>
  modelEstimator({
    modelsDir: dir,
    hfEndpoint: hub.url,
    hfToken: TOKEN,
    harnesses: testHarnesses(),
    ...options,
  });

const request = (source: string, fields: Partial<EstimateRequest> = {}): EstimateRequest => ({
  model_id: "remote",
  harness: "llama-server",
  source,
  ...fields,
});

/** The answer for the same model read from a local file, to compare remote answers with. */
const localAnswer = async (fields: Partial<EstimateRequest> = {}) => {
  await writeFile(join(dir, "local.gguf"), MODEL);
  return estimator().estimate(request("local.gguf", fields));
};

describe("estimates of remote sources", () => {
  it("reads the header by range requests: a tenth of the file at most, nothing stored", async () => {
    const answer = await estimator().estimate(request(`${hub.url}/files/model.gguf`));
    expect(answer).toEqual({
      ...(await localAnswer()),
      basis: "gguf header (HTTP range reads, 1.9 MiB)",
    });
    expect(hub.seen.map((seen) => seen.range)).toEqual(["bytes=0-1999999"]);
    expect(hub.sent).toBe(2_000_000);
    expect(hub.sent).toBeLessThan(MODEL.length / 10);
    expect(await readdir(dir)).toEqual(["local.gguf"]);
  });

  it("sends the token to hf_endpoint only, and follows its redirect to another origin", async () => {
    const answer = await estimator().estimate(request("hf:owner/repo/model.gguf"));
    expect(answer.basis).toMatch(/HTTP range reads/);
    expect(hub.seen).toEqual([
      {
        path: "/owner/repo/resolve/main/model.gguf",
        range: "bytes=0-1999999",
        authorization: `Bearer ${TOKEN}`,
      },
    ]);
    expect(cdn.seen).toEqual([{ path: "/files/model.gguf", range: "bytes=0-1999999" }]);
  });

  it("reads only what it needs from a server that ignores Range, then hangs up", async () => {
    const answer = await estimator().estimate(request(`${hub.url}/no-range/model.gguf`));
    expect(answer.vram_mb).toBe((await localAnswer()).vram_mb);
    // What left before the client hung up: socket buffers, far from the whole file.
    expect(hub.sent).toBeLessThan(MODEL.length / 2);
  });

  it("reads a file already downloaded from disk, without a request", async () => {
    const target = join(
      dir,
      "downloads",
      `127.0.0.1_${new URL(hub.url).port}`,
      "files",
      "model.gguf",
    );
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, MODEL);
    const answer = await estimator().estimate(request(`${hub.url}/files/model.gguf`));
    expect(answer.basis).toMatch(/^gguf header \(downloaded file, /);
    expect(hub.seen).toEqual([]);
  });

  it("reads a header once for every context, slot count and args", async () => {
    const estimates = estimator();
    const source = `${hub.url}/files/model.gguf`;
    const small = await estimates.estimate(request(source, { context_length: 1024 }));
    const large = await estimates.estimate(request(source, { max_concurrency: 16 }));
    const both = await Promise.all([
      estimates.estimate(request(source, { args: { n_gpu_layers: 2 } })),
      estimates.estimate(request(source, { args: { cache_type_k: "q8_0" } })),
    ]);
    expect(large.vram_mb).toBeGreaterThan(small.vram_mb);
    expect(both[0].vram_mb).toBeLessThan(large.vram_mb);
    expect(hub.seen).toHaveLength(1);
  });

  it.each([
    ["a missing file", "/files/absent.gguf", /HTTP 404 Not Found; check the URL in the catalogue/],
    ["a loopback port nobody listens on", "closed", /ECONNREFUSED/],
  ])("answers 502 upstream_error for %s", async (_, path, message) => {
    const source =
      path === "closed" ? `http://127.0.0.1:${await closedPort()}/m.gguf` : `${hub.url}${path}`;
    await expect(estimator().estimate(request(source))).rejects.toMatchObject({
      code: "upstream_error",
      param: "source",
      message: expect.stringMatching(message),
    });
  });

  it("says what to fix when the Hub wants a token", async () => {
    await expect(
      estimator({ hfToken: undefined }).estimate(request("hf:owner/repo/model.gguf")),
    ).rejects.toMatchObject({
      code: "upstream_error",
      message: expect.stringMatching(/HTTP 401.*set HF_TOKEN/),
    });
  });

  it("gives up on a server that answers nothing within the deadline", async () => {
    await expect(
      estimator({ timeoutMs: 300 }).estimate(request(`${hub.url}/hold/model.gguf`)),
    ).rejects.toMatchObject({
      code: "upstream_error",
      message: expect.stringMatching(/timeout|abort/i),
    });
  });

  it("answers 422 not_estimable for a remote file that is not GGUF", async () => {
    await expect(
      estimator().estimate(request(`${hub.url}/files/notes.gguf`)),
    ).rejects.toMatchObject({ code: "not_estimable", message: expect.stringMatching(/GGUF/) });
  });
});
