export { type Deferred, deferred, freePort } from "./async.js";

import { fileURLToPath } from "node:url";

export {
  FakeBehaviour,
  type FakeBehaviourInput,
  type FakeHarnessOptions,
  startFakeHarness,
} from "./fake-harness.js";
export { type FakeNeuron, type FakeNeuronOptions, startFakeNeuron } from "./fake-neuron.js";

/** The fake harness program, for neuron.yaml templates: `[node, FAKE_HARNESS_ENTRY, --model, …]`. */
export const FAKE_HARNESS_ENTRY = fileURLToPath(
  new URL("../dist/fake-harness-cli.js", import.meta.url),
);

/**
 * The fake harness as a neuron.yaml template harness (`harnesses: {fake: FAKE_HARNESS_TEMPLATE}`):
 * the model file holds its behaviour; `extra` adds arguments such as `["--alias", "{model_id}"]`.
 */
export const fakeHarnessTemplate = (extra: readonly string[] = []) => ({
  command: [
    process.execPath,
    FAKE_HARNESS_ENTRY,
    "--model",
    "{model_path}",
    "--port",
    "{port}",
    ...extra,
  ],
});
export const FAKE_HARNESS_TEMPLATE = fakeHarnessTemplate();
export { gpuDevice, neuronModel } from "./fixtures.js";
export { environOf, processesMentioning, waitFor } from "./processes.js";
