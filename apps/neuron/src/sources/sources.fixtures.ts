import { EventEmitter, once } from "node:events";
import { mkdtemp, realpath, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LoadProgress } from "@cortex/protocol";
import { afterEach, beforeEach } from "vitest";
import type { ProgressListener } from "../models/model-manager.js";
import { type LocalSourcesOptions, localSources } from "./preparer.js";

// The preparer against a fake Hugging Face on loopback: real HTTP, real files, real sockets cut
// halfway. What sources.int.test.ts and sources-redirects.int.test.ts share: useFakeHub() gives
// each test a fresh models_dir and hub, and closes every server in afterEach.

export const TOKEN = "hf_test_secret_token";
export const BODY = Buffer.alloc(1 << 20);
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 7 + (i >> 9)) & 0xff;

/** What a full (non-Range) answer for the model file does. */
type Mode = "normal" | "cut" | "hold" | "ignore-range" | "wrong-total";

interface Seen {
  readonly path: string;
  readonly range: string | undefined;
  readonly authorization: string | undefined;
}

export interface FakeHub {
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

export const startHub = async (): Promise<FakeHub> => {
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

/** The current test's models_dir; set by useFakeHub's beforeEach. */
export let dir: string;
/** The current test's fake Hugging Face (hf_endpoint); set by useFakeHub's beforeEach. */
export let hub: FakeHub;

/** A fresh models_dir and hub for every test of the file that calls it; all closed after. */
export const useFakeHub = (): void => {
  beforeEach(async () => {
    dir = await realpath(await mkdtemp(join(tmpdir(), "neuron-sources-int-")));
    hub = await startHub();
  });

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
    await rm(dir, { recursive: true, force: true });
  });
};

export const sourcesFor = (options: Partial<LocalSourcesOptions> = {}) =>
  localSources({ modelsDir: dir, hfEndpoint: hub.url, ...options });

export const stored = (...parts: string[]) => join(dir, "hf", "owner", "repo", "main", ...parts);

/** A listener that records every event and resolves `reached` once `predicate` holds. */
export const recorder = (predicate: (progress: LoadProgress) => boolean = () => true) => {
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

export const ignore = () => {};

// A self-signed certificate for 127.0.0.1, for tests only (openssl req -x509 -newkey ec
// -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500 -subj /CN=127.0.0.1
// -addext subjectAltName=IP:127.0.0.1,DNS:localhost). fetch is told to accept it through
// NODE_TLS_REJECT_UNAUTHORIZED, set only while the https tests run.
export const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyCPIf4NUnei9kgTD
aqUHiWopw1grdyHobyLaPYpNNkyhRANCAATGJZ14S9QWRGtELajRXRex+kTVRfdt
ygJMbCww+nyjuWU7Nvf7shE0rRG16jKX1B7Dly/I4BU7uORd9xzAqYHH
-----END PRIVATE KEY-----
`;
export const TEST_CERT = `-----BEGIN CERTIFICATE-----
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
