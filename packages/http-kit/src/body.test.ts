import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { describe, expect, it } from "vitest";
import { ApiError } from "./api-error.js";
import {
  BodyBudget,
  bodyBudgetFor,
  defaultBufferedBytes,
  inferenceFields,
  MAX_BODY_DEPTH,
  withModel,
} from "./body.js";

const MiB = 2 ** 20;

const refusal = (body: string | Buffer): unknown => {
  try {
    inferenceFields(typeof body === "string" ? Buffer.from(body) : body);
  } catch (error) {
    return error;
  }
  return null;
};

describe("inferenceFields", () => {
  it.each([
    ['{"model":"m","messages":[]}', "m", false],
    ['{"stream":true,"model":"tiny"}', "tiny", true],
    ['{"model":"a","stream":"true"}', "a", false],
    ['{"model":"a","stream":1}', "a", false],
    ['{"model":"org/name:q4","stream":false}', "org/name:q4", false],
    ['{"model":"caf\\u00e9"}', "café", false],
    ['{"model":"first","model":"last"}', "last", false],
    ['{"x":{"model":"inner","stream":true},"model":"outer"}', "outer", false],
  ])("reads %s", (body, model, stream) => {
    expect(inferenceFields(Buffer.from(body))).toMatchObject({ model, stream });
  });

  it.each([
    ["", "invalid_request_error", "the request body must be a JSON object with a model"],
    ["[]", "invalid_request_error", "the request body must be a JSON object"],
    ["{oops", "invalid_request_error", "the request body is not valid JSON"],
    ["{}", "missing_model", "the request body has no model: say which model should answer"],
    [
      '{"model":null}',
      "missing_model",
      "the request body has no model: say which model should answer",
    ],
    [
      '{"model":""}',
      "missing_model",
      "the request body has no model: say which model should answer",
    ],
    ['{"model":1}', "invalid_request_error", "model must be a string"],
    ['{"model":["m"]}', "invalid_request_error", "model must be a string"],
    ['{"model":{"id":"m"}}', "invalid_request_error", "model must be a string"],
    [
      `{"model":"m","x":${"[".repeat(MAX_BODY_DEPTH)}${"]".repeat(MAX_BODY_DEPTH)}}`,
      "invalid_request_error",
      "the request body nests objects and arrays deeper than 64 levels",
    ],
  ])("refuses %j", (body, code, message) => {
    const error = refusal(body);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code, message });
  });

  it("accepts the deepest body allowed", () => {
    const depth = MAX_BODY_DEPTH - 1;
    expect(
      inferenceFields(Buffer.from(`{"model":"m","x":${"[".repeat(depth)}${"]".repeat(depth)}}`)),
    ).toMatchObject({ model: "m" });
  });
});

describe("withModel", () => {
  it("replaces only the model's value, keeping every other byte as sent", () => {
    const text = '{ "model" : "alias" ,\n "messages":[{"content":"model"}], "n":1.50 }';
    const body = Buffer.from(text);
    const rewritten = withModel(body, inferenceFields(body).modelSpan, 'real-"id"');
    expect(rewritten.toString()).toBe(
      '{ "model" : "real-\\"id\\"" ,\n "messages":[{"content":"model"}], "n":1.50 }',
    );
    expect(inferenceFields(rewritten).model).toBe('real-"id"');
  });

  it("replaces the value the upstream will read when the model is repeated", () => {
    const body = Buffer.from('{"model":"a","model":"b"}');
    const rewritten = withModel(body, inferenceFields(body).modelSpan, "c");
    expect(JSON.parse(rewritten.toString())).toEqual({ model: "c" });
  });
});

/** A response that only closes, which is all a charge listens to. */
const response = () => new EventEmitter() as unknown as ServerResponse;

describe("BodyBudget", () => {
  it("takes bytes up to its limit and refuses the request that would pass it", () => {
    const budget = new BodyBudget(100);
    const a = budget.charge(response());
    const b = budget.charge(response());
    expect(a.take(60)).toBe(true);
    expect(b.take(41)).toBe(false);
    expect(budget.used).toBe(60);
    expect(b.take(40)).toBe(true);
    expect(budget.used).toBe(100);
  });

  it("gives a request's bytes back once, when its response closes", () => {
    const budget = new BodyBudget(100);
    const res = response();
    const charge = budget.charge(res);
    charge.take(30);
    charge.take(20);
    res.emit("close");
    res.emit("close");
    expect(budget.used).toBe(0);
    // A closed response takes nothing more.
    expect(charge.take(10)).toBe(false);
    expect(budget.used).toBe(0);
  });

  it("gives back what a body did not use of its declared length, never more than it took", () => {
    const budget = new BodyBudget(100);
    const res = response();
    const charge = budget.charge(res);
    charge.take(50);
    charge.giveBack(20);
    expect(budget.used).toBe(30);
    charge.giveBack(1000);
    expect(budget.used).toBe(0);
    res.emit("close");
    expect(budget.used).toBe(0);
  });

  it.each([
    [512 * MiB, 64 * MiB],
    [4 * 1024 * MiB, 256 * MiB],
    [24 * 1024 * MiB, 1024 * MiB],
    [512 * 1024 * MiB, 1024 * MiB],
  ])("defaults to 1/16 of %d bytes of memory, within 64 MiB and 1 GiB", (memory, expected) => {
    expect(defaultBufferedBytes(memory)).toBe(expected);
  });

  it("takes max_buffered_mb when the config has it", () => {
    expect(bodyBudgetFor(3).limitBytes).toBe(3 * MiB);
    expect(bodyBudgetFor(undefined).limitBytes).toBeGreaterThanOrEqual(64 * MiB);
  });
});
