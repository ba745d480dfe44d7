import { createServer, request as httpRequest, type Server } from "node:http";
import { openAIProblems } from "@cortex/testkit/openai";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { gpu, KEY, post, resident, useCortexFleet } from "./cortex.fixtures.js";

// Cold-load feedback in-process against fake neurons: a stream waiting for a load is kept alive
// with SSE comments, and a load that fails after the stream started is reported in the stream.

const { fleet, neuron } = useCortexFleet();

/**
 * A reverse proxy that cuts any answer silent for `idleMs`, like nginx's proxy_read_timeout or a
 * load balancer's idle timeout.
 */
const idleProxy = async (
  target: string,
  idleMs: number,
): Promise<{ url: string; server: Server }> => {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    let timer: NodeJS.Timeout | undefined;
    const out = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.on("data", (chunk: Buffer) => {
          arm();
          res.write(chunk);
        });
        answer.on("end", () => {
          clearTimeout(timer);
          res.end();
        });
      },
    );
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        out.destroy();
        res.destroy();
      }, idleMs);
    };
    out.on("error", () => res.destroy());
    req.pipe(out);
    arm();
  });
  server.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server };
};

describe("cold-load feedback", () => {
  it("keeps a waiting stream alive with comments the official client ignores, through a proxy's idle timeout", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)], loadDelayMs: 3500 }]);
    const proxy = await idleProxy(c.url, 2000);
    try {
      // Control: a non-streaming cold request through the same proxy is cut while it waits.
      await expect(
        new OpenAI({
          baseURL: `${proxy.url}/v1`,
          apiKey: KEY,
          maxRetries: 0,
        }).chat.completions.create({
          model: "embedder",
          messages: [{ role: "user", content: "hi" }],
        }),
      ).rejects.toThrow();
      const client = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: KEY, maxRetries: 0 });
      const chunks = [];
      for await (const chunk of await client.chat.completions.create({
        model: "chat-small",
        messages: [{ role: "user", content: "hello" }],
        stream: true,
      })) {
        expect(openAIProblems("CreateChatCompletionStreamResponse", chunk)).toEqual([]);
        chunks.push(chunk);
      }
      expect(chunks.length).toBeGreaterThan(1);
    } finally {
      proxy.server.closeAllConnections();
      proxy.server.close();
    }
  });

  it("says what it waits for in the comments, and nothing for a request answered at once", async () => {
    const c = await fleet([
      { name: "a", devices: [gpu(0, 24_000)], loadDelayMs: 1800, models: [resident("chat-small")] },
    ]);
    const cold = await post(c, "/v1/chat/completions", {
      model: "embedder",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    const text = await cold.text();
    expect(text).toMatch(/^: loading embedder/m);
    expect(text).toContain("data: [DONE]");
    const warm = await post(c, "/v1/chat/completions", {
      model: "chat-small",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(await warm.text()).not.toMatch(/^: /m);
  });

  it("puts a failure after the stream started into the stream, where the official client raises it", async () => {
    const c = await fleet([{ name: "a", devices: [gpu(0, 24_000)], loadDelayMs: 1800 }]);
    neuron("a").failNextLoad("load_failed", "the harness exited with code 3");
    const client = new OpenAI({ baseURL: `${c.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const consume = async () => {
      for await (const _chunk of await client.chat.completions.create({
        model: "chat-small",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      })) {
        // nothing arrives
      }
    };
    await expect(consume()).rejects.toThrow(/harness exited with code 3/);
    expect(c.dispatcher.reservations.total).toBe(0);
  });
});
