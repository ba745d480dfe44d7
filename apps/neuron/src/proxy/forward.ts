import { Agent } from "node:http";
import type { Response } from "express";
import got, { type RequestError } from "got";
import { NeuronError } from "../errors.js";

// Streams one inference request to a harness and its answer back, chunk by chunk. Only the
// harness's own headers that describe the body are passed on; hop-by-hop headers are not.

const agent = new Agent({ keepAlive: true, maxSockets: 1024 });

const client = got.extend({
  agent: { http: agent },
  retry: { limit: 0 },
  throwHttpErrors: false,
  decompress: false,
  timeout: { connect: 5000 },
});

const PASSED_HEADERS = ["content-type", "cache-control", "x-accel-buffering"];

const errorCode = (error: unknown): string | undefined => (error as RequestError | undefined)?.code;

/**
 * Forwards `body` to `${baseUrl}${path}` and pipes the answer into `res`. Resolves when the
 * answer is complete or the client has gone (the upstream request is then aborted). Rejects
 * with a NeuronError only while nothing has been sent, so the caller can still answer 502.
 */
export const forward = (
  baseUrl: string,
  path: string,
  body: Buffer,
  res: Response,
  signal: AbortSignal,
): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    const upstream = client.stream.post(`${baseUrl}${path}`, {
      body,
      headers: { "content-type": "application/json" },
      signal,
    });
    let settled = false;
    const finish = (error?: unknown) => {
      if (settled) return;
      settled = true;
      if (error === undefined) resolve();
      else reject(error);
    };
    upstream.on(
      "response",
      (answer: { statusCode: number; headers: Record<string, string | string[] | undefined> }) => {
        res.status(answer.statusCode);
        for (const name of PASSED_HEADERS) {
          const value = answer.headers[name];
          if (value !== undefined) res.setHeader(name, value);
        }
        res.flushHeaders();
      },
    );
    upstream.on("data", (chunk: Buffer) => {
      // Backpressure: a slow client pauses the harness's stream instead of growing a buffer.
      if (!res.write(chunk)) {
        upstream.pause();
        res.once("drain", () => upstream.resume());
      }
    });
    upstream.on("end", () => {
      res.end();
      finish();
    });
    upstream.on("error", (error: unknown) => {
      if (signal.aborted) return finish();
      if (res.headersSent) {
        // Bytes already reached the client: the only honest signal left is a cut connection.
        res.destroy();
        return finish();
      }
      finish(
        new NeuronError(
          "upstream_error",
          `the model server did not answer (${errorCode(error) ?? "error"})`,
          {
            cause: error,
            retryAfterS: 1,
          },
        ),
      );
    });
    signal.addEventListener("abort", () => finish(), { once: true });
  });
