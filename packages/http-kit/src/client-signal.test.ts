import { describe, expect, it } from "vitest";
import { ClientSignal } from "./client-signal.js";

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
