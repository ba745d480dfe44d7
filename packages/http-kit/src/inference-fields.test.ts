import { describe, expect, it } from "vitest";
import { ApiError } from "./api-error.js";
import {
  forwardedType,
  inferenceFields,
  MAX_BODY_DEPTH,
  queryFields,
  requestFields,
  urlWithModel,
  withModel,
} from "./inference-fields.js";
import { fileBytes, formBody } from "./multipart.fixtures.js";

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
    expect(inferenceFields(Buffer.from(body))).toMatchObject({ kind: "json", model, stream });
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
    const rewritten = withModel(body, inferenceFields(body), 'real-"id"');
    expect(rewritten.toString()).toBe(
      '{ "model" : "real-\\"id\\"" ,\n "messages":[{"content":"model"}], "n":1.50 }',
    );
    expect(inferenceFields(rewritten).model).toBe('real-"id"');
  });

  it("replaces the value the upstream will read when the model is repeated", () => {
    const body = Buffer.from('{"model":"a","model":"b"}');
    const rewritten = withModel(body, inferenceFields(body), "c");
    expect(JSON.parse(rewritten.toString())).toEqual({ model: "c" });
  });
});

const FORM = "multipart/form-data; boundary=b0undary";

const refused = (run: () => unknown): unknown => {
  try {
    run();
  } catch (error) {
    return error;
  }
  return null;
};

describe("requestFields", () => {
  const json = Buffer.from('{"model":"m","stream":true}');

  it.each([
    undefined,
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON",
    " application/json ;charset=UTF-8",
  ])("scans JSON for content type %s", (contentType) => {
    expect(requestFields(contentType, json)).toMatchObject({
      kind: "json",
      model: "m",
      stream: true,
    });
  });

  it("reads a multipart upload's model and stream fields", () => {
    const body = formBody("b0undary", [
      { name: "file", value: fileBytes(1000), filename: "a.wav", type: "audio/wav" },
      { name: "model", value: "whisper" },
      { name: "stream", value: "true" },
    ]);
    const fields = requestFields(FORM, body);
    expect(fields).toMatchObject({ kind: "multipart", model: "whisper", stream: true });
    expect(fields.members.size).toBe(0);
    expect(body.toString("latin1", fields.modelSpan.start, fields.modelSpan.end)).toBe("whisper");
  });

  it.each(["false", "True", "1", "true "])(
    "a form's stream field %j does not stream: only exactly true does",
    (value) => {
      const body = formBody("b0undary", [
        { name: "model", value: "m" },
        { name: "stream", value },
      ]);
      expect(requestFields(FORM, body).stream).toBe(false);
    },
  );

  it.each([
    [[], "the form has no model: say which model should answer"],
    [[{ name: "model", value: "" }], "the form has no model: say which model should answer"],
  ])("a form without a model is missing_model, as a JSON body is", (parts, message) => {
    const error = refused(() => requestFields(FORM, formBody("b0undary", parts)));
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: "missing_model", message, param: "model" });
  });

  it.each(["text/plain", "application/x-www-form-urlencoded", "multipart/mixed; boundary=x", ""])(
    "reads a body labelled %j as JSON (curl -d labels JSON form-urlencoded)",
    (contentType) => {
      expect(requestFields(contentType, json)).toMatchObject({ kind: "json", model: "m" });
    },
  );

  it("refuses a body of another type that is not JSON, as a JSON body would be", () => {
    expect(refused(() => requestFields("text/plain", Buffer.from("model=m")))).toMatchObject({
      code: "invalid_request_error",
      message: "the request body is not valid JSON",
    });
  });

  it.each([
    [undefined, "application/json"],
    ["application/json; charset=utf-8", "application/json; charset=utf-8"],
    ["application/x-www-form-urlencoded", "application/json"],
    ["text/plain", "application/json"],
  ])("a JSON body labelled %j goes on as %j", (contentType, forwarded) => {
    expect(forwardedType(requestFields(contentType, json), contentType)).toBe(forwarded);
  });

  it("an upload goes on with its own content type, boundary and all", () => {
    const body = formBody("b0undary", [{ name: "model", value: "m" }]);
    expect(forwardedType(requestFields(FORM, body), FORM)).toBe(FORM);
  });

  it("refuses a multipart content type without a boundary, and a malformed form", () => {
    expect(refused(() => requestFields("multipart/form-data", json))).toMatchObject({
      code: "invalid_request_error",
      message: "a multipart/form-data content type must name its boundary",
    });
    expect(refused(() => requestFields(FORM, json))).toMatchObject({
      code: "invalid_request_error",
      message: expect.stringMatching(/^the multipart\/form-data body is malformed/),
    });
  });
});

describe("queryFields", () => {
  it.each([
    ["/v1/audio/voices?model=tts", "tts"],
    ["/v1/audio/voices?x=1&model=org%2Ftts&y", "org/tts"],
    ["/v1/audio/voices?mod%65l=a+b", "a b"],
    ["/v1/audio/voices?model=caf%C3%A9", "café"],
  ])("reads %s", (url, model) => {
    const fields = queryFields(url);
    expect(fields).toMatchObject({ kind: "query", model, stream: false });
  });

  it.each([
    ["/v1/audio/voices", "missing_model"],
    ["/v1/audio/voices?", "missing_model"],
    ["/v1/audio/voices?model", "missing_model"],
    ["/v1/audio/voices?model=", "missing_model"],
    ["/v1/audio/voices?models=a", "missing_model"],
    ["/v1/audio/voices?model=%E0%A4%A", "invalid_request_error"],
    ["/v1/audio/voices?model=a&model=b", "invalid_request_error"],
  ])("refuses %s with %s", (url, code) => {
    const error = refused(() => queryFields(url));
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code, param: "model" });
  });
});

describe("replacing the model", () => {
  it("replaces a form's model field's bytes and nothing else", () => {
    const file = fileBytes(10_000);
    const body = formBody("b0undary", [
      { name: "file", value: file, filename: "a.wav" },
      { name: "model", value: "alias/name" },
      { name: "language", value: "en" },
    ]);
    const rewritten = withModel(body, requestFields(FORM, body), "model-id");
    const expected = formBody("b0undary", [
      { name: "file", value: file, filename: "a.wav" },
      { name: "model", value: "model-id" },
      { name: "language", value: "en" },
    ]);
    expect(rewritten.equals(expected)).toBe(true);
    expect(requestFields(FORM, rewritten).model).toBe("model-id");
  });

  it("never writes a line break into a form field", () => {
    const body = formBody("b0undary", [{ name: "model", value: "a" }]);
    expect(() => withModel(body, requestFields(FORM, body), "x\r\n--b0undary--")).toThrow(
      TypeError,
    );
  });

  it("replaces a query's model parameter, encoded, and leaves the body alone", () => {
    const url = "/v1/audio/voices?a=1&model=alias&b=2";
    const fields = queryFields(url);
    const body = Buffer.alloc(0);
    expect(withModel(body, fields, "org/id")).toBe(body);
    expect(urlWithModel(url, fields, "org/id")).toBe("/v1/audio/voices?a=1&model=org%2Fid&b=2");
    expect(urlWithModel(url, requestFields(undefined, Buffer.from('{"model":"m"}')), "x")).toBe(
      url,
    );
  });
});
