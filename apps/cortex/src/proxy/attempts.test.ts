import { IncomingMessage, ServerResponse } from "node:http";
import { Socket } from "node:net";
import { type Abortable, ClientSignal, inferenceFields } from "@cortex/http-kit";
import { describe, expect, it, vi } from "vitest";
import { CortexError } from "../errors.js";
import type { Lease } from "../router/lease.js";
import { proxyWithRetries } from "./attempts.js";
import {
  type ForwardOptions,
  type ForwardResult,
  UpstreamAbandonedError,
  UpstreamConnectError,
  UpstreamTimeoutError,
} from "./forward.js";
import type { Watched } from "./node-watch.js";

// The attempt loop with a scripted hop and a fake dispatcher: which failures are tried again
// where, which make a node suspect, what each replica's circuit hears (once per try), and how
// an answer that broke off after bytes ends.

type Step = (res: ServerResponse, options: ForwardOptions) => ForwardResult | Promise<never>;

const ok =
  (status = 200): Step =>
  () => ({
    status,
    firstByteMs: 1,
    usage: null,
    aborted: false,
    broken: null,
    delivered: true,
  });

const fail =
  (error: Error): Step =>
  () =>
    Promise.reject(error);

/** An answer that broke off; `head` is the content type the client was sent. */
const broke =
  (broken: ForwardResult["broken"], delivered: boolean, head = "text/event-stream"): Step =>
  (res) => {
    res.setHeader("content-type", head);
    if (delivered) res.write("data: {}\n\n");
    return {
      status: 200,
      firstByteMs: delivered ? 1 : null,
      usage: null,
      aborted: false,
      broken,
      delivered,
    };
  };

const REFUSED = () => new UpstreamConnectError("ECONNREFUSED", true, null);
const RESET = () => new UpstreamConnectError("ECONNRESET", false, null);

const BODY = Buffer.from(JSON.stringify({ model: "m", messages: [] }));

/** Runs one request through nodes `nodes` (in this order of preference) with scripted hops. */
const run = async (steps: Step[], nodes = ["a", "b", "c", "d"], withWatch = false) => {
  const reports: [string, boolean][] = [];
  const suspects: [string, string][] = [];
  const tried: string[] = [];
  const excludedSeen: string[][] = [];
  let released = 0;
  const watched: { node: string; closed: boolean; signal: Abortable }[] = [];
  const acquire = async (model: string, _signal: Abortable, excluded: ReadonlySet<string>) => {
    excludedSeen.push([...excluded]);
    const node = nodes.find((name) => !excluded.has(name));
    if (node === undefined)
      throw new CortexError("service_unavailable", "no healthy node", { retryAfterS: 1 });
    let reported = false;
    const lease: Lease = {
      model,
      node,
      url: `http://${node}:13131`,
      coldStart: false,
      waitedMs: 0,
      release: () => {
        released += 1;
      },
      report: (success) => {
        if (reported) throw new Error(`${node} reported twice`);
        reported = true;
        reports.push([node, success]);
      },
    };
    return lease;
  };
  const res = new ServerResponse(new IncomingMessage(new Socket()));
  const ended = vi.spyOn(res, "end");
  const outcome = proxyWithRetries(
    {
      acquire,
      tokenOf: () => "t",
      suspect: (node, why) => suspects.push([node, why]),
      ...(withWatch
        ? {
            watch: {
              watch: (node: string): Watched => {
                const entry = { node, closed: false, signal: new ClientSignal() };
                watched.push(entry);
                return {
                  signal: entry.signal,
                  activity: () => {},
                  close: () => {
                    entry.closed = true;
                  },
                };
              },
            },
          }
        : {}),
      streamIdleTimeoutMs: 1000,
      loadTimeoutMs: 5000,
      clientStallTimeoutMs: 0,
      forward: async (response, options) => {
        tried.push(new URL(options.baseUrl).hostname);
        const step = steps.shift();
        if (!step) throw new Error("no more steps");
        return step(response, options);
      },
    },
    {
      res,
      path: "/v1/chat/completions",
      body: BODY,
      fields: inferenceFields(BODY),
      requestId: "r",
      headers: {},
      signal: new ClientSignal(),
      affinityKey: undefined,
      onLease: () => {},
    },
  );
  const settled = await outcome.then(
    (value) => ({ value, error: null }),
    (error: unknown) => ({ value: null, error }),
  );
  return { ...settled, reports, suspects, tried, excludedSeen, released, res, ended, watched };
};

describe("proxyWithRetries", () => {
  it("answers from the first replica when it answers; its circuit hears it once", async () => {
    const result = await run([ok()]);
    expect(result.value).toMatchObject({ status: 200, errorCode: null });
    expect(result.reports).toEqual([["a", true]]);
    expect(result.suspects).toEqual([]);
    expect(result.released).toBe(1);
  });

  it("counts a 5xx against the replica without trying again", async () => {
    const result = await run([ok(503)]);
    expect(result.value).toMatchObject({ status: 503 });
    expect(result.reports).toEqual([["a", false]]);
    expect(result.tried).toEqual(["a"]);
  });

  it("tries a request that never arrived twice more, each elsewhere, suspecting each node", async () => {
    const result = await run([fail(REFUSED()), fail(REFUSED()), fail(REFUSED())]);
    expect(result.error).toBeInstanceOf(CortexError);
    expect(result.error).toMatchObject({ code: "upstream_error" });
    expect(result.tried).toEqual(["a", "b", "c"]);
    expect(result.excludedSeen).toEqual([[], ["a"], ["a", "b"]]);
    expect(result.suspects.map(([node]) => node)).toEqual(["a", "b", "c"]);
    expect(result.suspects[0]?.[1]).toBe("a request failed (ECONNREFUSED)");
    expect(result.reports).toEqual([
      ["a", false],
      ["b", false],
      ["c", false],
    ]);
    expect(result.released).toBe(3);
  });

  it.each([
    ["a reset before any answer", fail(RESET()), "a request failed (ECONNRESET)"],
    ["a timeout before any answer", fail(new UpstreamTimeoutError(null)), "a request timed out"],
    [
      "a reset after the head, before any byte",
      broke("reset", false),
      "a request failed (answer reset)",
    ],
    ["silence after the head, before any byte", broke("timeout", false), "a request timed out"],
  ])("tries %s once more elsewhere, and suspects the node", async (_name, step, why) => {
    const result = await run([step, ok()]);
    expect(result.value).toMatchObject({ status: 200, errorCode: null });
    expect(result.tried).toEqual(["a", "b"]);
    expect(result.suspects).toEqual([["a", why]]);
    expect(result.reports).toEqual([
      ["a", false],
      ["b", true],
    ]);
  });

  it("tries a request given up on an unhealthy node once more, without suspecting it again", async () => {
    const given = new UpstreamAbandonedError(new Error("node a became unhealthy"));
    const result = await run([fail(given), ok()]);
    expect(result.value).toMatchObject({ status: 200 });
    expect(result.suspects).toEqual([]);
    expect(result.reports).toEqual([
      ["a", false],
      ["b", true],
    ]);
  });

  it("tries a request that may have reached a neuron only once more", async () => {
    const result = await run([fail(RESET()), fail(new UpstreamTimeoutError(null))]);
    expect(result.error).toMatchObject({ code: "upstream_timeout" });
    expect(result.tried).toEqual(["a", "b"]);
    expect(result.reports).toEqual([
      ["a", false],
      ["b", false],
    ]);
  });

  it("still has its tries for unreached neurons after the one for a reset", async () => {
    const result = await run([fail(RESET()), fail(REFUSED()), fail(REFUSED()), ok()]);
    expect(result.value).toMatchObject({ status: 200 });
    expect(result.tried).toEqual(["a", "b", "c", "d"]);
  });

  it("tells the client what went wrong when no replica is left for another try", async () => {
    const result = await run([fail(RESET())], ["a"]);
    expect(result.error).toMatchObject({ code: "upstream_error" });
    expect((result.error as Error).message).toContain("ECONNRESET");
  });

  it("ends a stream that delivered bytes with an OpenAI error event, without another try", async () => {
    const result = await run([broke("abandoned", true), ok()]);
    expect(result.value).toMatchObject({ status: 502, errorCode: "upstream_error" });
    expect(result.tried).toEqual(["a"]);
    expect(result.suspects).toEqual([]);
    expect(result.reports).toEqual([["a", false]]);
    const event = String(result.ended.mock.calls[0]?.[0]);
    expect(event).toMatch(/^\ndata: \{"error":\{/);
    expect(JSON.parse(event.trim().slice("data: ".length))).toMatchObject({
      error: { code: "upstream_error", type: "server_error" },
    });
  });

  it("cuts an answer that is not a stream once it delivered bytes", async () => {
    const result = await run([broke("reset", true, "application/json")]);
    expect(result.value).toMatchObject({ status: 502 });
    expect(result.res.destroyed).toBe(true);
    expect(result.ended).not.toHaveBeenCalled();
    // A reset after bytes may be the neuron's own doing: no suspicion.
    expect(result.suspects).toEqual([]);
  });

  it("suspects the node when a stream that delivered bytes went silent", async () => {
    const result = await run([broke("timeout", true)]);
    expect(result.value).toMatchObject({ status: 502, errorCode: "upstream_timeout" });
    expect(result.suspects).toEqual([["a", "a request timed out"]]);
  });

  it("records a client gone as 499 and tells the circuit nothing", async () => {
    const gone: Step = () => ({
      status: 0,
      firstByteMs: null,
      usage: null,
      aborted: true,
      broken: null,
      delivered: false,
    });
    const result = await run([gone]);
    expect(result.value).toMatchObject({ status: 499 });
    expect(result.reports).toEqual([]);
    expect(result.released).toBe(1);
  });

  it("hands each try the watch of its node, and closes it after", async () => {
    let given: Abortable | undefined;
    const first: Step = (_res, options) => {
      given = options.abandon;
      return Promise.reject(RESET());
    };
    const result = await run([first, ok()], undefined, true);
    expect(result.watched.map((entry) => [entry.node, entry.closed])).toEqual([
      ["a", true],
      ["b", true],
    ]);
    expect(given).toBe(result.watched[0]?.signal);
  });
});
