import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpsServer, Agent as HttpsAgent } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { agentsFor, closeAll, closers, failure, send, text } from "./upstream.fixtures.js";
import { type ProxyAgents, targetOf } from "./upstream.js";

// Where post goes: targetOf's parsing of base URLs, and the https agent towards a TLS upstream
// on loopback (with a certificate from openssl, where there is one).

afterEach(closeAll);

describe("targetOf", () => {
  it.each([
    ["http://node-a", { tls: false, hostname: "node-a", port: 80, basePath: "" }],
    ["http://node-a/", { tls: false, hostname: "node-a", port: 80, basePath: "" }],
    ["https://node-a", { tls: true, hostname: "node-a", port: 443, basePath: "" }],
    ["http://node-a:8080", { tls: false, hostname: "node-a", port: 8080, basePath: "" }],
    ["https://node-a:8443/", { tls: true, hostname: "node-a", port: 8443, basePath: "" }],
    ["http://node-a:443", { tls: false, hostname: "node-a", port: 443, basePath: "" }],
    ["https://node-a:443", { tls: true, hostname: "node-a", port: 443, basePath: "" }],
    [
      "http://10.0.0.7:7000/base",
      { tls: false, hostname: "10.0.0.7", port: 7000, basePath: "/base" },
    ],
    ["http://h:1/base/", { tls: false, hostname: "h", port: 1, basePath: "/base" }],
    ["http://h:1/a/b//", { tls: false, hostname: "h", port: 1, basePath: "/a/b" }],
    ["http://[::1]:8080", { tls: false, hostname: "::1", port: 8080, basePath: "" }],
    ["https://[fe80::1]/v", { tls: true, hostname: "fe80::1", port: 443, basePath: "/v" }],
    ["HTTP://Node-A:81", { tls: false, hostname: "node-a", port: 81, basePath: "" }],
  ])("parses %s", (url, expected) => {
    expect(targetOf(url)).toEqual(expected);
  });

  it.each(["ftp://node-a/", "ws://node-a:80", "file:///tmp/socket", "node-a:8080"])(
    "refuses %s, which is not http(s)",
    (url) => {
      expect(() => targetOf(url)).toThrow(TypeError);
    },
  );

  it("refuses what is not a URL at all", () => {
    expect(() => targetOf("not a url")).toThrow();
  });

  it("hands back the same object for the same base URL", () => {
    const first = targetOf("http://memo-host:9000/x/");
    expect(targetOf("http://memo-host:9000/x/")).toBe(first);
    // Another spelling is another key, with an equal value.
    expect(targetOf("http://memo-host:9000/x")).toEqual(first);
  });

  it("keeps answering right after its memo was cleared (more than 1024 base URLs)", () => {
    const first = targetOf("http://churn-0:1");
    for (let i = 1; i <= 1100; i += 1) targetOf(`http://churn-${i}:${i}`);
    expect(targetOf("http://churn-0:1")).toEqual(first);
    expect(targetOf("http://churn-1100:1100").port).toBe(1100);
  });
});

describe("post over TLS", () => {
  /** A self-signed certificate for 127.0.0.1 from openssl; null where openssl cannot make one. */
  const credentials = (() => {
    const dir = mkdtempSync(join(tmpdir(), "http-kit-tls-"));
    try {
      execFileSync(
        "openssl",
        [
          ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
          ...["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"],
          ...["-addext", "subjectAltName=IP:127.0.0.1"],
          ...["-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
        ],
        { stdio: "ignore" },
      );
      return {
        key: readFileSync(join(dir, "key.pem")),
        cert: readFileSync(join(dir, "cert.pem")),
      };
    } catch {
      return null;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();

  const serveTls = async (credentials: { key: Buffer; cert: Buffer }) => {
    const server = createHttpsServer(credentials, (req, res) => {
      req.resume();
      res.end(`tls ${req.url}`);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    closers.push(() => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  it.skipIf(!credentials)("goes through the https agent to an https base URL", async () => {
    if (!credentials) return;
    const url = await serveTls(credentials);
    const agents = agentsFor();
    const trusting: ProxyAgents = {
      http: agents.http,
      https: new HttpsAgent({ keepAlive: true, ca: credentials.cert }),
    };
    closers.push(() => trusting.https.destroy());
    const { response } = await send(`${url}/base`, trusting, { path: "/v1/embeddings" });
    expect(await text(response)).toBe("tls /base/v1/embeddings");
    // The plain agent was not involved.
    expect(Object.keys(agents.http.freeSockets)).toHaveLength(0);
  });

  it.skipIf(!credentials)("refuses an upstream whose certificate it does not trust", async () => {
    if (!credentials) return;
    const url = await serveTls(credentials);
    const error = await failure(send(url, agentsFor()));
    expect(error.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);
    expect(error.idle).toBe(false);
  });
});
