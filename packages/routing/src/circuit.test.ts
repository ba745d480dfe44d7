import { describe, expect, it } from "vitest";
import {
  type Circuit,
  CLOSED,
  circuitAllows,
  circuitAt,
  circuitFailed,
  circuitSent,
  circuitSucceeded,
} from "./circuit.js";

describe("circuit", () => {
  it("a closed circuit lets every request through", () => {
    expect(circuitAllows(CLOSED, 0)).toBe(true);
    expect(circuitSent(CLOSED, 0)).toBe(CLOSED);
  });

  it("a failure opens it for 1 s, doubling per failure in a row up to 60 s", () => {
    let circuit: Circuit = CLOSED;
    const cooldowns: number[] = [];
    let now = 0;
    for (let i = 0; i < 9; i += 1) {
      circuit = circuitFailed(circuit, now);
      if (circuit.state !== "open") throw new Error("not open");
      cooldowns.push(circuit.untilMs - now);
      now = circuit.untilMs;
    }
    expect(cooldowns).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  });

  it("no request while open; one trial once half-open; nothing more while it is out", () => {
    const open = circuitFailed(CLOSED, 0);
    expect(circuitAllows(open, 999)).toBe(false);
    expect(circuitAt(open, 1000)).toEqual({ state: "half_open", failures: 1, trial: false });
    expect(circuitAllows(open, 1000)).toBe(true);
    const trying = circuitSent(open, 1000);
    expect(circuitAllows(trying, 1001)).toBe(false);
  });

  it("the trial's success closes it; its failure opens it for longer", () => {
    const trying = circuitSent(circuitFailed(CLOSED, 0), 1000);
    expect(circuitSucceeded()).toEqual(CLOSED);
    const again = circuitFailed(trying, 1500);
    expect(again).toEqual({ state: "open", failures: 2, untilMs: 3500 });
  });
});
