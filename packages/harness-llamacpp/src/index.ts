import { fileURLToPath } from "node:url";

export {
  buildTinyModel,
  TINY_MODEL_SHAPE,
  type TinyModelOptions,
  type TinyModelShape,
  type TinyModelVariant,
  writeTinyModel,
} from "./gguf/index.js";

/** `node <TINY_MODEL_CLI> --out file.gguf [--seed N] [--variant chat|embedding]` */
export const TINY_MODEL_CLI = fileURLToPath(new URL("../dist/gguf/cli.js", import.meta.url));
