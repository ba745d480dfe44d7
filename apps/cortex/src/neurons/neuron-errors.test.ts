import { describe, expect, it } from "vitest";
import { CortexError } from "../errors.js";
import { fromNeuron, isGone, type NeuronOperation } from "./neuron-errors.js";

const failed = (code: string, fields: Record<string, unknown> = {}) =>
  Object.assign(new Error("the neuron said no"), { code, ...fields });

describe("fromNeuron", () => {
  it.each<[NeuronOperation, string, string, number | null, string]>([
    ["load", "insufficient_vram", "no_capacity", 5, 'loading "m" on a failed: the neuron said no'],
    ["load", "model_busy", "no_capacity", 5, 'loading "m" on a failed: the neuron said no'],
    [
      "load",
      "upstream_timeout",
      "upstream_timeout",
      5,
      'loading "m" on a failed: the neuron said no',
    ],
    [
      "load",
      "harness_not_found",
      "harness_not_found",
      null,
      'loading "m" on a failed: the neuron said no (check the catalogue entry)',
    ],
    [
      "load",
      "invalid_request_error",
      "invalid_request_error",
      null,
      'loading "m" on a failed: the neuron said no (check the catalogue entry)',
    ],
    ["load", "upstream_error", "load_failed", 5, 'loading "m" on a failed: the neuron said no'],
    ["evict", "model_busy", "no_capacity", 5, 'evicting "m" from a failed: the neuron said no'],
    ["evict", "load_failed", "load_failed", 5, 'evicting "m" from a failed: the neuron said no'],
    ["unload", "model_busy", "model_busy", 5, 'model "m" is busy on a; retry, or send force: true'],
    [
      "unload",
      "internal_error",
      "upstream_error",
      null,
      'unloading "m" from a failed: the neuron said no',
    ],
    [
      "logs",
      "model_not_found",
      "upstream_error",
      null,
      'reading the logs of "m" from a failed: the neuron said no',
    ],
  ])("%s: the neuron's %s is %s", (operation, code, expected, retryAfterS, message) => {
    const error = fromNeuron(failed(code), operation, "m", "a");
    expect(error).toBeInstanceOf(CortexError);
    expect(error).toMatchObject({ code: expected, retryAfterS, message });
  });

  it("keeps the neuron's Retry-After for a load, and passes a CortexError through", () => {
    expect(fromNeuron(failed("model_busy", { retryAfterS: 30 }), "load", "m", "a")).toMatchObject({
      retryAfterS: 30,
    });
    const own = new CortexError("not_found", 'node "zz" is not in the fleet');
    expect(fromNeuron(own, "unload", "m", "zz")).toBe(own);
  });

  it("describes what is not an error object", () => {
    expect(fromNeuron("boom", "logs", "m", "a").message).toBe(
      'reading the logs of "m" from a failed: boom',
    );
    expect(fromNeuron(undefined, "load", "m", "a")).toMatchObject({ code: "load_failed" });
  });

  it("counts model_not_found as gone", () => {
    expect(isGone(failed("model_not_found"))).toBe(true);
    expect(isGone(failed("model_busy"))).toBe(false);
    expect(isGone(null)).toBe(false);
  });
});
