import { ERROR_CODES, errorEnvelope, isErrorCode } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { openAIProblems } from "./openai.js";

describe("openAIProblems", () => {
  it.each(Object.keys(ERROR_CODES))(
    "%s builds an envelope valid against OpenAI's schema",
    (code) => {
      if (!isErrorCode(code)) throw new Error(code);
      expect(openAIProblems("ErrorResponse", errorEnvelope(code, "something to fix"))).toEqual([]);
    },
  );

  it("notices a broken envelope", () => {
    expect(openAIProblems("ErrorResponse", { error: { message: 1 } })).not.toEqual([]);
  });
});
