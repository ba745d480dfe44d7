import { type IncomingMessage, request } from "node:http";
import type { AddressInfo } from "node:net";
import { deferred } from "@cortex/testkit";
import { type Mock, vi } from "vitest";
import { readBody } from "./body.js";
import { closers, closeServer } from "./closers.fixtures.js";
import { type FastHandler, isInference, listen, withFastPath } from "./fast-path.js";

// The plain node:http inference path on loopback: routing between the fast handler and the rest,
// the error envelope it answers failures with, and reading bodies from real (and misbehaving)
// clients.

export { closeAll, closers, closeServer } from "./closers.fixtures.js";

/** A logger whose calls the test can check. */
export interface LogSpy {
  readonly info: Mock;
  readonly warn: Mock;
  readonly error: Mock;
}

export const logSpy = (): LogSpy => ({ info: vi.fn(), warn: vi.fn(), error: vi.fn() });

/** The fast path in front of a stand-in for the express app, listening on loopback. */
export const start = async (fast: FastHandler, take = isInference) => {
  const log = logSpy();
  const server = await listen(
    withFastPath(
      take,
      fast,
      (req, res) => {
        req.resume();
        res.setHeader("x-served-by", "rest");
        res.end(`rest ${req.method} ${req.url}`);
      },
      log,
    ),
    0,
    "127.0.0.1",
  );
  closers.push(closeServer(server));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, log };
};

/** A fast handler that echoes what readBody gave it; `failed` has what readBody threw. */
export const echo = (limitBytes: number) => {
  const failed = deferred<{ error: unknown; flowing: boolean | null }>();
  const handler: FastHandler = async (req, res) => {
    let body: Buffer;
    try {
      body = await readBody(req, limitBytes);
    } catch (error) {
      failed.resolve({ error, flowing: req.readableFlowing });
      throw error;
    }
    res.setHeader("x-served-by", "fast");
    res.end(JSON.stringify({ length: body.length, text: body.toString("utf8") }));
  };
  return { handler, failed: failed.promise };
};

export interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}

/** A POST with the body in `chunks` (chunked unless a content-length is given). */
export const send = (
  url: string,
  chunks: readonly (string | Buffer)[],
  headers: Record<string, string | number> = {},
): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", agent: false, headers }, (response) => {
      const parts: Buffer[] = [];
      response.on("data", (part: Buffer) => parts.push(part));
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(parts).toString("utf8"),
        }),
      );
      response.on("error", reject);
    });
    req.on("error", reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });

export const envelopeOf = (answer: Answer) =>
  JSON.parse(answer.body) as {
    error: { message: string; type: string; code: string; param: string | null };
  };
