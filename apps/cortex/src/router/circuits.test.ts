import { circuitAt } from "@cortex/routing";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Circuits } from "./circuits.js";

// Cortex's failure memory per replica, on fake timers: the cooldown timer half-opens a circuit
// and wakes waiters (onChange); one trial goes; its outcome closes or reopens the circuit.

const KEY = "node-a\u0000m";

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});

afterEach(() => {
  vi.useRealTimers();
});

const setup = () => {
  const onChange = vi.fn();
  const circuits = new Circuits(onChange, () => Date.now());
  return { circuits, onChange, state: () => circuitAt(circuits.of(KEY), Date.now()).state };
};

describe("Circuits", () => {
  it("is closed for a replica that never failed, and a send or success changes nothing", () => {
    const { circuits, onChange, state } = setup();
    circuits.sent(KEY);
    circuits.succeeded(KEY);
    expect(state()).toBe("closed");
    expect(circuits.blocked.size).toBe(0);
    expect(onChange).not.toHaveBeenCalled();
  });

  it("opens on a failure and blocks the replica for the 1 s cooldown", () => {
    const { circuits, onChange, state } = setup();
    circuits.failed(KEY);
    expect(state()).toBe("open");
    expect(circuits.blocked.has(KEY)).toBe(true);
    vi.advanceTimersByTime(999);
    expect(circuits.blocked.has(KEY)).toBe(true);
    expect(onChange).not.toHaveBeenCalled();
  });

  it("half-opens after the cooldown and calls onChange, so waiters look again", () => {
    const { circuits, onChange, state } = setup();
    circuits.failed(KEY);
    vi.advanceTimersByTime(1000);
    expect(state()).toBe("half_open");
    expect(circuits.blocked.has(KEY)).toBe(false);
    expect(onChange).toHaveBeenCalledTimes(1);
  });

  it("lets one trial through while half-open: the replica is blocked again once it is sent", () => {
    const { circuits } = setup();
    circuits.failed(KEY);
    vi.advanceTimersByTime(1000);
    circuits.sent(KEY);
    expect(circuits.of(KEY)).toMatchObject({ state: "half_open", trial: true });
    expect(circuits.blocked.has(KEY)).toBe(true);
  });

  it("closes when the trial succeeds", () => {
    const { circuits, onChange, state } = setup();
    circuits.failed(KEY);
    vi.advanceTimersByTime(1000);
    circuits.sent(KEY);
    circuits.succeeded(KEY);
    expect(state()).toBe("closed");
    expect(circuits.blocked.size).toBe(0);
    // Half-open, then closed.
    expect(onChange).toHaveBeenCalledTimes(2);
    // Closed means closed: the next send is no trial.
    circuits.sent(KEY);
    expect(circuits.blocked.size).toBe(0);
  });

  it("opens again for twice as long when the trial fails", () => {
    const { circuits, onChange, state } = setup();
    circuits.failed(KEY);
    vi.advanceTimersByTime(1000);
    circuits.sent(KEY);
    circuits.failed(KEY);
    expect(circuits.of(KEY)).toMatchObject({ state: "open", failures: 2 });
    vi.advanceTimersByTime(1999);
    expect(circuits.blocked.has(KEY)).toBe(true);
    expect(onChange).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(1);
    expect(state()).toBe("half_open");
    expect(circuits.blocked.has(KEY)).toBe(false);
    expect(onChange).toHaveBeenCalledTimes(2);
  });

  it("keeps each replica's circuit apart", () => {
    const { circuits } = setup();
    circuits.failed(KEY);
    expect(circuits.blocked.has("node-b\u0000m")).toBe(false);
    expect(circuits.of("node-b\u0000m").state).toBe("closed");
  });

  it("a success while open closes it and cancels the half-open timer", () => {
    const { circuits, onChange, state } = setup();
    circuits.failed(KEY);
    // A request sent before the failure answered after it.
    circuits.succeeded(KEY);
    expect(state()).toBe("closed");
    expect(circuits.blocked.size).toBe(0);
    expect(onChange).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(60_000);
    expect(onChange).toHaveBeenCalledTimes(1);
  });

  it("close() stops every cooldown timer", () => {
    const { circuits, onChange } = setup();
    circuits.failed(KEY);
    circuits.close();
    vi.advanceTimersByTime(60_000);
    expect(onChange).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });
});
