import { Agent, request } from "node:http";
import { now } from "./support.js";

export interface Target {
  readonly name: string;
  /** Full URL of the chat completions endpoint. */
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly model: string;
}

/** One keep-alive connection per target, so every request measures the path, not a handshake. */
export const client = (target: Target) => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const url = new URL(target.url);
  const send = (body: string, onFirstChunk?: () => void) =>
    new Promise<{ status: number; bytes: number }>((resolve, reject) => {
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: "POST",
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
            ...target.headers,
          },
        },
        (res) => {
          let bytes = 0;
          let first = true;
          res.on("data", (chunk: Buffer) => {
            if (first) {
              first = false;
              onFirstChunk?.();
            }
            bytes += chunk.length;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  const chatBody = (stream: boolean) =>
    JSON.stringify({
      model: target.model,
      messages: [{ role: "user", content: "Hello, how are you today?" }],
      max_tokens: 16,
      ...(stream ? { stream: true } : {}),
    });
  const plain = chatBody(false);
  const streamed = chatBody(true);
  return {
    target,
    /** One non-streaming chat request; milliseconds. */
    async chat(): Promise<number> {
      const start = now();
      const { status } = await send(plain);
      const ms = now() - start;
      if (status !== 200) throw new Error(`${target.name}: status ${status}`);
      return ms;
    },
    /** One streamed chat request: milliseconds to the first body chunk and to the end. */
    async stream(): Promise<{ first: number; last: number }> {
      const start = now();
      let first = Number.NaN;
      const { status } = await send(streamed, () => {
        first = now() - start;
      });
      const last = now() - start;
      if (status !== 200) throw new Error(`${target.name}: status ${status}`);
      return { first, last };
    },
    body: plain,
    close: () => agent.destroy(),
  };
};
