export * from "./catalogue.js";
export * from "./common.js";
export * from "./config.js";
export * from "./cortex.js";
export * from "./errors.js";
export * from "./exposure.js";
export * from "./issues.js";
export * from "./neuron.js";
