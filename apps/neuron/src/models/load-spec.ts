import type { Device, LoadRequest, NeuronModel } from "@cortex/protocol";
import { capText } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import type { Harness } from "../harnesses/definitions.js";
import { type ModelSpec, specOf } from "../harnesses/model-spec.js";
import { pickDevices } from "./room.js";

// A load request turned into the spec the neuron keeps, in two pure steps with the source check
// (which reads the file system) between them, so a request with several problems is refused
// for the same one as always: harness, args, source, devices. Neither step changes anything:
// a refused load leaves the node as it was.

export type Checked =
  | { readonly kind: "spec"; readonly spec: ModelSpec }
  | { readonly kind: "reject"; readonly error: NeuronError };

/** The request with its defaults, checked against its harness's table of options. */
export const checkRequest = (
  request: LoadRequest,
  harnesses: ReadonlyMap<string, Harness>,
  defaultIdleTtlS: number,
): Checked => {
  const harness = harnesses.get(request.harness);
  if (!harness) {
    return {
      kind: "reject",
      error: new NeuronError(
        "harness_not_found",
        `harness "${request.harness}" is not configured on this node (configured: ${[...harnesses.keys()].join(", ") || "none"})`,
        { param: "harness" },
      ),
    };
  }
  const spec = specOf(request, defaultIdleTtlS);
  const problems = harness.check(spec);
  if (problems.length > 0) {
    return {
      kind: "reject",
      error: new NeuronError(
        "invalid_request_error",
        capText(problems.map((problem) => problem.message).join("; ")),
        { param: problems[0]?.param ?? "args" },
      ),
    };
  }
  return { kind: "spec", spec };
};

/** What the node holds of the same id, when it holds the model on devices now. */
export interface Here {
  readonly status: NeuronModel["status"];
  readonly devices: readonly number[];
}

/**
 * Checks the devices a request names, and picks them by free memory when it names none (a GPU
 * model on a node with GPUs). `resident` is every other model the node lists.
 */
export const chooseDevices = (
  spec: ModelSpec,
  named: boolean,
  devices: readonly Device[],
  resident: readonly NeuronModel[],
  here: Here | undefined,
): Checked => {
  const unknown = spec.devices.filter((index) => !devices.some((device) => device.index === index));
  if (unknown.length > 0) {
    return {
      kind: "reject",
      error: new NeuronError(
        "invalid_request_error",
        capText(
          `device(s) ${unknown.join(", ")} do not exist on this node (it has ${devices.map((d) => d.index).join(", ") || "none"})`,
        ),
        { param: "devices" },
      ),
    };
  }
  if (named || spec.vram_mb === 0 || devices.length === 0) return { kind: "spec", spec };
  const count = Math.min(spec.tensor_parallel, devices.length);
  // A model already here keeps its devices: the GPUs report its own memory as used, so a fresh
  // pick would see other devices as freer and move it for nothing.
  const picked =
    here && here.status !== "unloaded" && here.devices.length === count
      ? [...here.devices]
      : pickDevices(devices, resident, count);
  return {
    kind: "spec",
    spec: { ...spec, devices: picked, tensor_parallel: Math.max(1, picked.length) },
  };
};
