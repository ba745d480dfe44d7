export * from "./load.js";
export * from "./rules.js";
export * from "./watch.js";
