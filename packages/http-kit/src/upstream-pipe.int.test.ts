import { EventEmitter, once } from "node:events";
import { deferred } from "@cortex/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { agentsFor, call, closeAll, relay, send, serve, text } from "./upstream.fixtures.js";
import { pipeBody } from "./upstream.js";

// pipeBody through a relay on loopback that does what forward.ts does: streaming chunk by chunk,
// backpressure from a client that does not read, and how a broken-off body is reported.

afterEach(closeAll);

describe("pipeBody", () => {
  it("passes each chunk on as it comes, without waiting for the rest", async () => {
    const parts = ["data: one\n\n", "data: two\n\n", "data: three\n\n", "data: [DONE]\n\n"];
    const reached = parts.map(() => deferred());
    const upstream = await serve(async (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/event-stream" });
      // Each part is written only once the client has the previous one: a relay that buffered
      // anything would never finish.
      for (const [i, part] of parts.entries()) {
        res.write(part);
        await reached[i]?.promise;
      }
      res.end();
    });
    const seen: string[] = [];
    const hop = await relay(upstream.url, {
      pipe: () => ({ onChunk: (chunk) => seen.push(chunk.toString()) }),
    });
    const response = await call(hop.url);
    expect(response.headers["content-type"]).toBe("text/event-stream");
    let received = "";
    response.on("data", (chunk: Buffer) => {
      received += chunk.toString();
      parts.forEach((_, i) => {
        if (received === parts.slice(0, i + 1).join("")) reached[i]?.resolve();
      });
    });
    await once(response, "end");
    expect(received).toBe(parts.join(""));
    expect(await hop.piped).toBe(true);
    expect(seen.join("")).toBe(parts.join(""));
  });

  it("shows a stream's head at once when its first chunk is late", async () => {
    const headSeen = deferred();
    const upstream = await serve(async (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.flushHeaders();
      // The first chunk waits for the client to have the head: a relay that held the head
      // back until body bytes came would never finish.
      await headSeen.promise;
      res.end("data: late\n\n");
    });
    const hop = await relay(upstream.url);
    const response = await call(hop.url);
    headSeen.resolve();
    expect(response.statusCode).toBe(200);
    expect(await text(response)).toBe("data: late\n\n");
    expect(await hop.piped).toBe(true);
  });

  it("relays a sized answer with its status and content-length", async () => {
    const upstream = await serve(async (req, res) => {
      await text(req);
      res.writeHead(429, { "content-type": "application/json", "content-length": 12 });
      res.end('{"busy":"y"}');
    });
    const hop = await relay(upstream.url);
    const response = await call(hop.url);
    expect(response.statusCode).toBe(429);
    expect(response.headers["content-length"]).toBe("12");
    expect(await text(response)).toBe('{"busy":"y"}');
    expect(await hop.piped).toBe(true);
  });

  it("pauses the upstream while the client does not read, keeping the relay's buffers small", async () => {
    // Far more than the kernel's socket buffers on both connections can hold.
    const total = 128 * 2 ** 20;
    const chunk = Buffer.alloc(16 * 2 ** 10, "x");
    const upstreamState = { written: 0, refused: 0, waiting: false, done: false };
    const changed = new EventEmitter();
    const upstream = await serve(async (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": total });
      while (upstreamState.written < total) {
        upstreamState.written += chunk.length;
        if (!res.write(chunk)) {
          upstreamState.refused += 1;
          upstreamState.waiting = true;
          changed.emit("change");
          await once(res, "drain");
          upstreamState.waiting = false;
        }
      }
      res.end();
      upstreamState.done = true;
      changed.emit("change");
    });
    let relayed = 0;
    let maxBuffered = 0;
    let pauses = 0;
    let paused = false;
    const hop = await relay(upstream.url, {
      pipe: ({ response }, res) => {
        response.on("pause", () => {
          pauses += 1;
          paused = true;
          changed.emit("change");
        });
        response.on("resume", () => {
          paused = false;
        });
        return {
          onChunk: (piece) => {
            relayed += piece.length;
            // What the relay holds: unread upstream bytes and unsent client bytes.
            maxBuffered = Math.max(maxBuffered, response.readableLength + res.writableLength);
          },
        };
      },
    });
    const response = await call(hop.url);
    expect(response.headers["content-length"]).toBe(String(total));
    // The client reads nothing until the upstream is held up by the relay (or, should the
    // kernel buffer it all, has finished).
    await new Promise<void>((resolve) => {
      const check = () => {
        if (upstreamState.done || (upstreamState.waiting && paused)) {
          changed.off("change", check);
          resolve();
        }
      };
      changed.on("change", check);
      check();
    });
    expect(upstreamState.refused).toBeGreaterThan(0);
    expect(pauses).toBeGreaterThan(0);
    expect(maxBuffered).toBeLessThan(2 ** 20);
    let received = 0;
    response.on("data", (piece: Buffer) => {
      received += piece.length;
    });
    await once(response, "end");
    expect(received).toBe(total);
    expect(relayed).toBe(total);
    expect(await hop.piped).toBe(true);
    expect(maxBuffered).toBeLessThan(2 ** 20);
  });

  it("resolves false when the upstream dies in the middle of the body", async () => {
    const firstPart = deferred();
    const upstream = await serve(async (req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: partial\n\n");
      await firstPart.promise;
      res.socket?.destroy();
    });
    const hop = await relay(upstream.url, {
      pipe: () => ({ onChunk: () => firstPart.resolve() }),
    });
    const response = await call(hop.url);
    response.on("error", () => {});
    expect(await hop.piped).toBe(false);
    // The relay cut the client's connection too: the answer does not end cleanly.
    await new Promise((resolve) => response.on("close", resolve));
    expect(response.complete).toBe(false);
  });

  it("resolves false when a sized body stops short of its content-length", async () => {
    const upstream = await serve(async (req, res) => {
      req.resume();
      res.writeHead(200, { "content-length": 100 });
      res.write("only ten b");
      res.socket?.end();
    });
    const hop = await relay(upstream.url);
    const response = await call(hop.url);
    response.on("error", () => {});
    expect(await hop.piped).toBe(false);
  });

  it("resolves false when the upstream goes quiet for the idle timeout mid-body", async () => {
    const upstream = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
    });
    const hop = await relay(upstream.url, { idleTimeoutMs: 200 });
    const response = await call(hop.url);
    response.on("error", () => {});
    expect(await hop.piped).toBe(false);
  });

  it("resolves false when the signal aborts during a streamed answer", async () => {
    const controller = new AbortController();
    const upstreamClosed = deferred();
    const upstream = await serve((req, res) => {
      req.resume();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
      res.on("close", () => upstreamClosed.resolve());
    });
    const hop = await relay(upstream.url, {
      signal: controller.signal,
      pipe: () => ({ onChunk: () => controller.abort(new Error("client went away")) }),
    });
    const response = await call(hop.url);
    response.on("error", () => {});
    expect(await hop.piped).toBe(false);
    await upstreamClosed.promise;
  });

  it("with discard, reads the whole body, shows it to onChunk, and writes nothing", async () => {
    const parts = ["data: {", '"error":"no"', "}\n\n"];
    const upstream = await serve(async (req, res) => {
      req.resume();
      res.writeHead(500, { "content-type": "text/event-stream" });
      for (const part of parts) {
        res.write(part);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      res.end();
    });
    const agents = agentsFor();
    const piped = deferred<{ complete: boolean; seen: string }>();
    const { url } = await serve(async (req, res) => {
      req.resume();
      // The client's stream was started before the upstream answered (forward.ts's relayError).
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(": waiting\n\n");
      const { response } = await send(upstream.url, agents);
      let seen = "";
      const complete = await pipeBody(response, res, {
        discard: true,
        onChunk: (chunk) => {
          seen += chunk.toString();
        },
      });
      res.end(`data: relayed ${seen.length}\n\n`);
      piped.resolve({ complete, seen });
    });
    const response = await call(url);
    expect(await text(response)).toBe(": waiting\n\ndata: relayed 22\n\n");
    expect(await piped.promise).toEqual({ complete: true, seen: parts.join("") });
  });

  it("ends the client's answer for an empty upstream body", async () => {
    const upstream = await serve((req, res) => {
      req.resume();
      res.writeHead(204);
      res.end();
    });
    const hop = await relay(upstream.url);
    const response = await call(hop.url);
    expect(response.statusCode).toBe(204);
    expect(await text(response)).toBe("");
    expect(await hop.piped).toBe(true);
  });
});
