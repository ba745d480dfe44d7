import { fileURLToPath } from "node:url";

/**
 * The worker program the neuron starts per model: `node <WORKER_ENTRY> --model … --port …`.
 * It always points at the compiled file, from the sources (tests) and from dist/ alike.
 */
export const WORKER_ENTRY = fileURLToPath(new URL("../../dist/worker/main.js", import.meta.url));
