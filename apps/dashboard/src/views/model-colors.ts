import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { type ModelColors, modelColors } from "../lib/colors.js";

/** Colours for the models the dashboard knows (catalogue and resident), set by the app. */
export const ModelColorsContext = createContext<ModelColors>(modelColors([]));

export const useModelColor = (): ModelColors => useContext(ModelColorsContext);
