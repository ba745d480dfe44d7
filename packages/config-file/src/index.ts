export {
  ConfigError,
  type ConfigFileOptions,
  loadConfigFile,
  runServeCommand,
} from "./config-file.js";
