import type { LoadRequest, NeuronModel } from "@cortex/protocol";
import { gpuDevice } from "@cortex/testkit";
import { describe, expect, it } from "vitest";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import {
  DEFAULT_CONTEXT_LENGTH,
  DEFAULT_MAX_CONCURRENCY,
  specOf,
} from "../harnesses/model-spec.js";
import { checkRequest, chooseDevices } from "./load-spec.js";

// The load request → spec steps, pure: no manager, no process, no file system.

const llamacpp = defineHarness("llamacpp", {}, { node: "node", entry: "worker.js" }) as Harness;
const harnesses = new Map([["llamacpp", llamacpp]]);

const request = (fields: Partial<LoadRequest> = {}): LoadRequest => ({
  model_id: "m",
  harness: "llamacpp",
  source: "m.gguf",
  ...fields,
});

const resident = (id: string, devices: number[], vram_mb: number): NeuronModel => ({
  id,
  harness: "llamacpp",
  status: "loaded",
  devices,
  vram_mb,
  in_flight: 0,
  queued: 0,
  max_concurrency: 1,
  last_accessed: null,
  loaded_at: null,
  error: null,
});

describe("checkRequest", () => {
  it("applies the defaults", () => {
    expect(checkRequest(request(), harnesses, 900)).toEqual({
      kind: "spec",
      spec: {
        id: "m",
        harness: "llamacpp",
        source: "m.gguf",
        quant: null,
        devices: [],
        tensor_parallel: 1,
        vram_mb: 0,
        max_concurrency: DEFAULT_MAX_CONCURRENCY,
        idle_ttl_s: 900,
        context_length: DEFAULT_CONTEXT_LENGTH,
        args: {},
      },
    });
  });

  it.each([
    [
      "an unknown harness",
      request({ harness: "vllm" }),
      "harness_not_found",
      "harness",
      /harness "vllm" is not configured on this node \(configured: llamacpp\)/,
    ],
    [
      "an argument the harness does not declare",
      request({ args: { rm_rf: true } }),
      "invalid_request_error",
      "args",
      /rm_rf/,
    ],
  ])("refuses %s", (_, given, code, param, message) => {
    const checked = checkRequest(given, harnesses, 0);
    expect(checked.kind).toBe("reject");
    if (checked.kind !== "reject") return;
    expect(checked.error).toMatchObject({ code, param });
    expect(checked.error.message).toMatch(message);
  });

  it("names no harness when none is configured", () => {
    const checked = checkRequest(request(), new Map(), 0);
    expect(checked.kind === "reject" && checked.error.message).toMatch(/\(configured: none\)/);
  });
});

describe("chooseDevices", () => {
  const gpus = [gpuDevice(0, 24_000), gpuDevice(1, 24_000)];
  const spec = (fields: Partial<LoadRequest> = {}) => specOf(request(fields), 0);

  it.each([
    ["a CPU model", spec(), false, gpus, []],
    ["a GPU model on a node without GPUs", spec({ vram_mb: 1000 }), false, [], []],
    ["devices named by the request", spec({ vram_mb: 1000, devices: [1] }), true, gpus, [1]],
  ])("leaves the devices of %s as they are", (_, given, named, devices, expected) => {
    expect(chooseDevices(given, named, devices, [], undefined)).toEqual({
      kind: "spec",
      spec: { ...given, devices: expected },
    });
  });

  it("refuses devices the node does not have, naming those it has", () => {
    const checked = chooseDevices(spec({ devices: [0, 7] }), true, gpus, [], undefined);
    expect(checked.kind).toBe("reject");
    if (checked.kind !== "reject") return;
    expect(checked.error).toMatchObject({ code: "invalid_request_error", param: "devices" });
    expect(checked.error.message).toBe("device(s) 7 do not exist on this node (it has 0, 1)");
  });

  it("picks the device with most room, counting what resident models hold", () => {
    const checked = chooseDevices(
      spec({ vram_mb: 1000 }),
      false,
      gpus,
      [resident("other", [0], 10_000)],
      undefined,
    );
    expect(checked).toMatchObject({ kind: "spec", spec: { devices: [1], tensor_parallel: 1 } });
  });

  it("picks as many devices as tensor_parallel asks, at most all of them", () => {
    const checked = chooseDevices(
      spec({ vram_mb: 1000, tensor_parallel: 4 }),
      false,
      gpus,
      [],
      undefined,
    );
    expect(checked).toMatchObject({ kind: "spec", spec: { devices: [0, 1], tensor_parallel: 2 } });
  });

  it.each([
    ["loaded", [0]],
    ["unloaded", [1]],
  ] as const)(
    "a model already here and %s keeps its devices unless unloaded",
    (status, expected) => {
      const checked = chooseDevices(
        spec({ vram_mb: 1000 }),
        false,
        gpus,
        [resident("other", [0], 10_000)],
        { status, devices: [0] },
      );
      expect(checked).toMatchObject({ kind: "spec", spec: { devices: expected } });
    },
  );
});
