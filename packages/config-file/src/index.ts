export * from "./config-file.js";
export * from "./env-overrides.js";
