export { SeededRandom } from "./prng.js";
export {
  buildTinyModel,
  TINY_MODEL_SHAPE,
  type TinyModelOptions,
  type TinyModelShape,
  type TinyModelVariant,
  writeTinyModel,
} from "./tiny-model.js";
export { buildSpmVocab, SPM_SPACE, type SpmVocab } from "./vocab.js";
export { encodeGguf, type GgufTensor, type GgufValue } from "./writer.js";
