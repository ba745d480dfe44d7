import { ApiError } from "@cortex/http-kit";
import { errorEnvelope } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { CortexError } from "../errors.js";
import { ndjsonOf } from "./ndjson.js";
import {
  errorLine,
  fromApiError,
  innerAnswerError,
  messageOf,
  OllamaError,
  ollamaErrorOf,
  streamEventError,
} from "./ollama-error.js";

describe("messageOf", () => {
  it.each([
    [
      JSON.stringify(errorEnvelope("model_not_found", 'model "x" does not exist')),
      'model "x" does not exist',
    ],
    ['{"error": "plain"}', "plain"],
    ['{"message": "top level"}', "top level"],
    ["upstream exploded\n", "upstream exploded"],
    ['{"error": {"code": 500}}', null],
    ["", null],
  ])("%s → %s", (body, message) => {
    expect(messageOf(body)).toBe(message);
  });
});

describe("Ollama errors", () => {
  it("keeps the inner answer's status, message and Retry-After", () => {
    const error = innerAnswerError(
      503,
      JSON.stringify(errorEnvelope("no_capacity", "no room for m")),
      "5",
    );
    expect([error.status, error.message, error.retryAfter]).toEqual([503, "no room for m", "5"]);
    expect(innerAnswerError(502, "", undefined).message).toBe("HTTP 502");
  });

  it("gives a stream's error event the status of its code", () => {
    const timeout = streamEventError(errorEnvelope("upstream_timeout", "silent for 120 s"));
    expect([timeout.status, timeout.message]).toEqual([504, "silent for 120 s"]);
    const unknown = streamEventError({ error: { code: "weird", message: "harness broke" } });
    expect([unknown.status, unknown.message]).toEqual([502, "harness broke"]);
  });

  it("answers cortex's own errors with their status", () => {
    expect(fromApiError(new CortexError("model_not_found", "no"))).toMatchObject({ status: 404 });
    expect(fromApiError(new ApiError("invalid_api_key", "key"))).toMatchObject({ status: 401 });
    expect(fromApiError(new ApiError("overloaded", "busy", { retryAfterS: 1 }))).toMatchObject({
      status: 503,
      retryAfter: "1",
    });
    expect(ollamaErrorOf(new Error("bug"))).toBeNull();
    const own = new OllamaError(418, "tea");
    expect(ollamaErrorOf(own)).toBe(own);
  });

  it("caps messages, which may quote a client", () => {
    expect(new OllamaError(400, "x".repeat(10_000)).message.length).toBeLessThanOrEqual(4096);
  });

  it("writes a stream's error as one last NDJSON line", () => {
    expect(errorLine(new OllamaError(502, 'broke "off"\n'))).toBe(
      '{"error":"broke \\"off\\"\\n"}\n',
    );
  });
});

describe("ndjsonOf", () => {
  it("writes one JSON text per line, newlines in strings escaped", () => {
    const text = ndjsonOf([{ response: "a\nb", done: false }, { done: true }]);
    expect(text).toBe('{"response":"a\\nb","done":false}\n{"done":true}\n');
    expect(
      text
        .trimEnd()
        .split("\n")
        .map((line) => JSON.parse(line)),
    ).toHaveLength(2);
    expect(ndjsonOf([])).toBe("");
  });
});
