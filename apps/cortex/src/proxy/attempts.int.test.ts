import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { ClientSignal, inferenceFields } from "@cortex/http-kit";
import { afterEach, describe, expect, it } from "vitest";
import type { Lease } from "../router/lease.js";
import { proxyWithRetries } from "./attempts.js";

// The attempt loop over real sockets: a first upstream that sends the head of its answer and
// then dies, before any byte of the body, and a second that answers. The client must get the
// second answer whole, with its own headers, as if the first had never answered; once bytes of
// a stream went out, it gets them and an error event instead.

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const listen = async (handler: Handler): Promise<string> => {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => handler(req, res));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
};

/** Sends the head (and `body`, if any), then kills the connection. */
const diesAfterHead =
  (headers: Record<string, string | number>, body = ""): Handler =>
  (_req, res) => {
    res.writeHead(200, headers);
    if (body) res.write(body);
    res.flushHeaders();
    setTimeout(() => res.socket?.destroy(), 50);
  };

const STREAM = "data: {}\n\ndata: [DONE]\n\n";
const SSE = { "content-type": "text/event-stream" };

/** A cortex-like front whose requests go to `upstreams` in turn, and what a client got. */
const front = async (upstreams: string[]) => {
  const reports: boolean[] = [];
  const url = await listen(async (req, res) => {
    void req;
    const body = Buffer.from('{"model":"m","stream":true}');
    let next = 0;
    try {
      await proxyWithRetries(
        {
          acquire: async (model) => {
            const lease: Lease = {
              model,
              node: `n${next}`,
              url: upstreams[next] as string,
              coldStart: false,
              waitedMs: 0,
              release: () => {},
              report: (ok) => reports.push(ok),
            };
            next += 1;
            return lease;
          },
          tokenOf: () => "",
          suspect: () => {},
          streamIdleTimeoutMs: 5000,
          loadTimeoutMs: 5000,
          clientStallTimeoutMs: 0,
        },
        {
          res,
          path: "/v1/chat/completions",
          body,
          fields: inferenceFields(body),
          requestId: "r",
          headers: {},
          signal: new ClientSignal(),
          affinityKey: undefined,
          onLease: () => {},
        },
      );
    } catch {
      res.destroy();
    }
  });
  const answer = await fetch(`${url}/v1/chat/completions`, { method: "POST", body: "{}" });
  return { answer, text: await answer.text(), reports };
};

describe("proxyWithRetries over sockets", () => {
  it("continues a stream whose head alone went out on the next replica", async () => {
    const first = await listen(diesAfterHead(SSE));
    const second = await listen((_req, res) => {
      res.writeHead(200, SSE);
      res.end(STREAM);
    });
    const { answer, text, reports } = await front([first, second]);
    expect(answer.status).toBe(200);
    expect(answer.headers.get("content-type")).toBe("text/event-stream");
    expect(answer.headers.get("x-cortex-node")).toBe("n0");
    expect(text).toBe(STREAM);
    expect(reports).toEqual([false, true]);
  });

  it("answers with the next replica's own status and length when a sized answer died before its body", async () => {
    const first = await listen(
      diesAfterHead({ "content-type": "application/json", "content-length": 500 }),
    );
    const json = '{"ok":true}';
    const second = await listen((_req, res) => {
      res.writeHead(201, {
        "content-type": "application/json; charset=utf-8",
        "content-length": json.length,
      });
      res.end(json);
    });
    const { answer, text } = await front([first, second]);
    expect(answer.status).toBe(201);
    expect(answer.headers.get("content-length")).toBe(String(json.length));
    expect(answer.headers.get("x-cortex-node")).toBe("n1");
    expect(text).toBe(json);
  });

  it("ends a stream that sent bytes with an error event, without another try", async () => {
    const first = await listen(diesAfterHead(SSE, "data: {}\n\n"));
    const second = await listen((_req, res) => {
      res.writeHead(200, SSE);
      res.end(STREAM);
    });
    const { answer, text, reports } = await front([first, second]);
    expect(answer.status).toBe(200);
    const [sent, event] = text.split("\n\n\n");
    expect(sent).toBe("data: {}");
    expect(JSON.parse((event ?? "").replace(/^data: /, ""))).toMatchObject({
      error: { code: "upstream_error" },
    });
    expect(reports).toEqual([false]);
  });
});
