import { describe, expect, it } from "vitest";
import { boundedError, capText, MAX_MESSAGE_CHARS } from "./bounded-text.js";
import { NeuronError } from "./errors.js";

describe("capText", () => {
  it.each([0, 1, 100, MAX_MESSAGE_CHARS])("keeps a text of %i characters as it is", (length) => {
    const text = "a".repeat(length);
    expect(capText(text)).toBe(text);
  });

  it.each([MAX_MESSAGE_CHARS + 1, MAX_MESSAGE_CHARS + 10, 10_000, 1 << 20, 20 << 20])(
    "cuts %i characters to at most the limit, keeping both ends",
    (length) => {
      const text = `HEAD${"m".repeat(length - 8)}TAIL`;
      const capped = capText(text);
      expect(capped.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
      expect(capped.length).toBeGreaterThan(MAX_MESSAGE_CHARS - 40);
      expect(capped.startsWith("HEAD")).toBe(true);
      expect(capped.endsWith("TAIL")).toBe(true);
      const cut = Number(/\[…(\d+) characters cut…\]/.exec(capped)?.[1]);
      // The count is exact: what is kept plus what was cut is the whole text.
      expect(capped.length - ` […${cut} characters cut…] `.length + cut).toBe(length);
    },
  );

  it("takes another limit", () => {
    expect(capText("0123456789".repeat(10), 40)).toBe("01234567 […84 characters cut…] 23456789");
  });

  it("never splits a surrogate pair", () => {
    const text = "😀".repeat(5000);
    const capped = capText(text);
    expect(capped.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
    // No lone surrogate anywhere: the text survives a UTF-8 round trip unchanged.
    expect(Buffer.from(capped, "utf8").toString("utf8")).toBe(capped);
  });
});

describe("boundedError", () => {
  it("returns a short error itself", () => {
    const error = new NeuronError("load_failed", "short");
    expect(boundedError(error)).toBe(error);
  });

  it("keeps code, param and Retry-After of a long one", () => {
    const cause = new Error("root");
    const error = new NeuronError("load_failed", "x".repeat(100_000), {
      param: "source",
      retryAfterS: 5,
      cause,
    });
    const bounded = boundedError(error);
    expect(bounded).toBeInstanceOf(NeuronError);
    expect(bounded).toMatchObject({ code: "load_failed", param: "source", retryAfterS: 5, cause });
    expect(bounded.message.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
  });
});
