import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { ClientSignal, clientGone, unlessAborted } from "./client-signal.js";

describe("ClientSignal", () => {
  it("runs every listener once, on the first abort, with the first reason", () => {
    const signal = new ClientSignal();
    const calls: string[] = [];
    signal.addEventListener("abort", () => calls.push("a"));
    signal.addEventListener("abort", () => calls.push(`b:${String(signal.reason)}`));
    expect(signal.aborted).toBe(false);
    signal.abort("gone");
    signal.abort("again");
    expect(calls).toEqual(["a", "b:gone"]);
    expect(signal.aborted).toBe(true);
    expect(() => signal.throwIfAborted()).toThrow("gone");
  });

  it("never runs a removed listener, nor one added after the abort", () => {
    const signal = new ClientSignal();
    const calls: string[] = [];
    const removed = () => calls.push("removed");
    signal.addEventListener("abort", removed);
    signal.removeEventListener("abort", removed);
    signal.abort(new Error("gone"));
    signal.addEventListener("abort", () => calls.push("late"));
    expect(calls).toEqual([]);
    expect(() => signal.throwIfAborted()).toThrow("gone");
  });

  it("does not throw before an abort", () => {
    expect(() => new ClientSignal().throwIfAborted()).not.toThrow();
  });
});

describe("unlessAborted", () => {
  it("settles with the promise while the signal stays quiet, and leaves no listener", async () => {
    const signal = new ClientSignal();
    expect(await unlessAborted(Promise.resolve(7), signal)).toBe(7);
    await expect(unlessAborted(Promise.reject(new Error("no")), signal)).rejects.toThrow("no");
    signal.abort(new Error("late"));
  });

  it("rejects with the reason when the signal aborts first, or already has", async () => {
    const signal = new AbortController();
    const waiting = unlessAborted(new Promise(() => {}), signal.signal);
    signal.abort(new Error("gone"));
    await expect(waiting).rejects.toThrow("gone");
    // A real AbortSignal never calls a listener added after its abort: checked up front.
    await expect(unlessAborted(new Promise(() => {}), signal.signal)).rejects.toThrow("gone");
  });

  it("is the promise itself without a signal", () => {
    const promise = Promise.resolve(1);
    expect(unlessAborted(promise, undefined)).toBe(promise);
  });
});

describe("clientGone", () => {
  const response = (finished: boolean) =>
    Object.assign(new EventEmitter(), { writableFinished: finished }) as unknown as ServerResponse;

  it("aborts when the connection closes before the answer finished, not after", () => {
    const early = response(false);
    const cut = clientGone(early);
    early.emit("close");
    expect(cut.signal.aborted).toBe(true);
    const late = response(true);
    const done = clientGone(late);
    late.emit("close");
    expect(done.signal.aborted).toBe(false);
  });

  it("stops watching once released", () => {
    const res = response(false);
    const { signal, release } = clientGone(res);
    release();
    res.emit("close");
    expect(signal.aborted).toBe(false);
    expect(res.listenerCount("close")).toBe(0);
  });
});
