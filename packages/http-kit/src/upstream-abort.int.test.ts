import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import { deferred } from "@cortex/testkit";
import { afterEach, describe, expect, it } from "vitest";
import {
  agentsFor,
  closeAll,
  closers,
  failure,
  rejection,
  send,
  serve,
  text,
} from "./upstream.fixtures.js";

// post's idle timeouts and its abort signal, against real upstreams on loopback: what it
// rejects with, and what it leaves behind in the upstream and the agent's pool.

afterEach(closeAll);

describe("post", () => {
  it("fails with idle (and not neverArrived) when an accepted request gets no answer", async () => {
    const arrived = deferred();
    const upstream = await serve((req) => {
      req.resume();
      arrived.resolve();
    });
    const agents = agentsFor();
    const error = await failure(send(upstream.url, agents, { idleTimeoutMs: 200 }));
    await arrived.promise;
    expect(error).toMatchObject({ code: "ETIMEDOUT", neverArrived: false, idle: true });
    // The request was destroyed with its socket: nothing is left pooled to be reused.
    expect(Object.keys(agents.http.freeSockets)).toHaveLength(0);
  });

  it("fails with idle when the upstream stops in the middle of its headers", async () => {
    const upstream = await serve((req) => {
      req.resume();
      req.socket.write("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n");
    });
    const error = await failure(send(upstream.url, agentsFor(), { idleTimeoutMs: 200 }));
    expect(error).toMatchObject({ code: "ETIMEDOUT", neverArrived: false, idle: true });
  });

  it("rejects with the signal's reason when aborted before the answer; the upstream sees the close", async () => {
    const arrived = deferred<IncomingMessage>();
    const upstream = await serve((req) => {
      req.resume();
      arrived.resolve(req);
    });
    const controller = new AbortController();
    const agents = agentsFor();
    const answer = send(upstream.url, agents, { signal: controller.signal });
    const req = await arrived.promise;
    const closed = once(req.socket, "close");
    const reason = new Error("client went away");
    controller.abort(reason);
    expect(await rejection(answer)).toBe(reason);
    await closed;
    expect(Object.keys(agents.http.sockets)).toHaveLength(0);
  });

  it("rejects with the default AbortError when aborted without a reason", async () => {
    const arrived = deferred();
    const upstream = await serve((req) => {
      req.resume();
      arrived.resolve();
    });
    const controller = new AbortController();
    const answer = send(upstream.url, agentsFor(), { signal: controller.signal });
    await arrived.promise;
    controller.abort();
    const error = await rejection(answer);
    expect(error).toBe(controller.signal.reason);
    expect((error as Error).name).toBe("AbortError");
  });

  it("does not even connect when the signal is already aborted", async () => {
    const upstream = await serve((_req, res) => res.end());
    const controller = new AbortController();
    const reason = new Error("already gone");
    controller.abort(reason);
    const agents = agentsFor();
    expect(await rejection(send(upstream.url, agents, { signal: controller.signal }))).toBe(reason);
    // No socket was asked for: the agent has nothing, pending or pooled.
    expect(Object.keys(agents.http.sockets)).toHaveLength(0);
    expect(Object.keys(agents.http.requests)).toHaveLength(0);
    expect(upstream.sockets).toHaveLength(0);
  });

  it("leaves no abort listener behind once the answer is over", async () => {
    const upstream = await serve((req, res) => {
      req.resume();
      res.end("ok");
    });
    const controller = new AbortController();
    const agents = agentsFor();
    const { response } = await send(upstream.url, agents, { signal: controller.signal });
    await text(response);
    if (!response.destroyed) await once(response, "close");
    // Aborting after the end touches nothing: the pooled socket stays usable.
    controller.abort(new Error("late"));
    const again = await send(upstream.url, agents);
    expect(await text(again.response)).toBe("ok");
    expect(again.request.reusedSocket).toBe(true);
  });

  it("sets no idle limit when idleTimeoutMs is 0 (the neuron's harness hop)", async () => {
    const upstream = await serve((req, res) => {
      req.resume();
      setTimeout(() => res.end("slow but fine"), 300);
    });
    const { response } = await send(upstream.url, agentsFor(), { idleTimeoutMs: 0 });
    expect(await text(response)).toBe("slow but fine");
  });

  /** An upstream that never answers, and agents whose only socket a first request holds. */
  const saturated = async () => {
    let requests = 0;
    const arrived = deferred();
    const upstream = await serve((req) => {
      requests += 1;
      req.resume();
      arrived.resolve();
    });
    const agents = agentsFor(1);
    const holder = new AbortController();
    const holding = rejection(
      send(upstream.url, agents, { signal: holder.signal, idleTimeoutMs: 60_000 }),
    );
    await arrived.promise;
    const release = async () => {
      holder.abort(new Error("released"));
      await holding;
    };
    closers.push(release);
    return { upstream, agents, release, requests: () => requests };
  };

  it("never sends a request aborted while it waited for a pooled socket", async () => {
    const { upstream, agents, release, requests } = await saturated();
    const controller = new AbortController();
    const queued = rejection(send(upstream.url, agents, { signal: controller.signal }));
    expect(Object.values(agents.http.requests).flat()).toHaveLength(1);
    const reason = new Error("gave up waiting");
    controller.abort(reason);
    await release();
    expect(await queued).toBe(reason);
    expect(requests()).toBe(1);
  });

  // BUG (see the report): ClientRequest.destroy() on a request that has no socket yet emits
  // nothing until the agent hands it one, so post() stays pending until another request on
  // the same upstream ends (never, for a stream that does not end).
  it("rejects a request waiting for a pooled socket as soon as its signal aborts", async () => {
    const { upstream, agents, release } = await saturated();
    const controller = new AbortController();
    const queued = rejection(send(upstream.url, agents, { signal: controller.signal }));
    const reason = new Error("gave up waiting");
    controller.abort(reason);
    // Generous: settling takes microseconds once the abort is seen.
    const outcome = await Promise.race([
      queued,
      new Promise((resolve) => setTimeout(() => resolve("still pending"), 2000)),
    ]);
    await release();
    expect(outcome).toBe(reason);
  });
});
