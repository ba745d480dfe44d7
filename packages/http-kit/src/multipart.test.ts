import { describe, expect, it } from "vitest";
import { ApiError } from "./api-error.js";
import { fileBytes, formBody } from "./multipart.fixtures.js";
import {
  formBoundary,
  headerParams,
  MAX_PART_HEADER_BYTES,
  MAX_PARTS,
  scanForm,
} from "./multipart.js";

const WANTED = new Set(["model", "stream"]);

const refusal = (run: () => unknown): unknown => {
  try {
    run();
  } catch (error) {
    return error;
  }
  return null;
};

/** The wanted fields' values, as text. */
const read = (body: Buffer, boundary = "b0undary") =>
  Object.fromEntries(
    [...scanForm(body, boundary, WANTED)].map(([name, span]) => [
      name,
      body.toString("utf8", span.start, span.end),
    ]),
  );

const expectMalformed = (body: Buffer | string, message: RegExp, boundary = "b0undary") => {
  const error = refusal(() =>
    scanForm(typeof body === "string" ? Buffer.from(body, "latin1") : body, boundary, WANTED),
  );
  expect(error).toBeInstanceOf(ApiError);
  expect(error).toMatchObject({ code: "invalid_request_error", message });
};

describe("headerParams", () => {
  it.each([
    ['form-data; name="model"', { name: "model" }],
    ["form-data; name=model", { name: "model" }],
    ['form-data;name="a";filename="x.wav"', { name: "a", filename: "x.wav" }],
    ['form-data; NAME="a"; name="b"', { name: "a" }],
    ['form-data; name="a\\"b"', { name: 'a"b' }],
    ['form-data; name="a;b"; x=1', { name: "a;b", x: "1" }],
    ["form-data", {}],
    ["form-data;", {}],
  ])("reads %s", (value, expected) => {
    expect(Object.fromEntries(headerParams(value) ?? [])).toEqual(expected);
  });

  it.each(['form-data; name="open', "form-data; name"])("refuses %s", (value) => {
    expect(headerParams(value)).toBeNull();
  });
});

describe("formBoundary", () => {
  it.each([
    ["multipart/form-data; boundary=abc", "abc"],
    ['multipart/form-data; boundary="a b:c"', "a b:c"],
    [
      "multipart/form-data;boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
      "----WebKitFormBoundary7MA4YWxkTrZu0gW",
    ],
    ["Multipart/Form-Data; charset=utf-8; Boundary=x", "x"],
    [`multipart/form-data; boundary=${"b".repeat(70)}`, "b".repeat(70)],
  ])("reads %s", (contentType, boundary) => {
    expect(formBoundary(contentType)).toBe(boundary);
  });

  it.each([
    ["multipart/form-data", /must name its boundary/],
    ["multipart/form-data; boundary=", /must name its boundary/],
    ['multipart/form-data; boundary=""', /must name its boundary/],
    ['multipart/form-data; boundary="open', /parameters are malformed/],
    [`multipart/form-data; boundary=${"b".repeat(71)}`, /1 to 70/],
    ['multipart/form-data; boundary="ends with space "', /1 to 70/],
    ["multipart/form-data; boundary=semi\u00e9", /1 to 70/],
    ['multipart/form-data; boundary="a\\"b"', /1 to 70/],
  ])("refuses %s", (contentType, message) => {
    const error = refusal(() => formBoundary(contentType));
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: "invalid_request_error", message });
  });
});

describe("scanForm", () => {
  it("finds the wanted fields' values as byte spans, whatever else the form holds", () => {
    const body = formBody("b0undary", [
      { name: "file", value: fileBytes(4096), filename: "a.wav", type: "audio/wav" },
      { name: "model", value: "whisper-1" },
      { name: "stream", value: "true" },
      { name: "language", value: "en" },
    ]);
    const fields = scanForm(body, "b0undary", WANTED);
    const model = fields.get("model");
    expect(model && body.toString("latin1", model.start, model.end)).toBe("whisper-1");
    expect(read(body)).toEqual({ model: "whisper-1", stream: "true" });
  });

  it("finds a model that comes after a large file part", () => {
    const body = formBody("b0undary", [
      { name: "file", value: fileBytes(8 * 2 ** 20), filename: "big.wav" },
      { name: "model", value: "m" },
    ]);
    expect(read(body)).toEqual({ model: "m" });
  });

  it("ignores the preamble and the epilogue, and takes padding after a boundary", () => {
    const text =
      "preamble, ignored\r\n--b0undary \t\r\nContent-Disposition: form-data; name=model\r\n\r\n" +
      "m\r\n--b0undary--\r\nepilogue --b0undary\r\n";
    expect(read(Buffer.from(text, "latin1"))).toEqual({ model: "m" });
  });

  it("reads values as sent: empty, multi-line, with bytes that look like a boundary", () => {
    const body = formBody("b0undary", [
      { name: "model", value: "" },
      { name: "stream", value: "line one\r\n--not the boundary\r\n" },
    ]);
    expect(read(body)).toEqual({ model: "", stream: "line one\r\n--not the boundary\r\n" });
  });

  it("reads header names and the disposition type in any case, and parts without headers", () => {
    const text =
      '--b0undary\r\n\r\nno headers\r\n--b0undary\r\ncontent-DISPOSITION: Form-Data; Name="model"\r\n\r\nm\r\n--b0undary--';
    // A part without headers has no name: it is malformed.
    expectMalformed(text, /no Content-Disposition/);
    const named = text.replace("--b0undary\r\n\r\nno headers\r\n", "");
    expect(read(Buffer.from(named, "latin1"))).toEqual({ model: "m" });
  });

  it("answers an empty form with no fields", () => {
    expect(read(Buffer.from("--b0undary--\r\n"))).toEqual({});
  });

  it.each([
    ["no boundary at all", "just text", /never appears/],
    [
      "another boundary",
      "--other\r\nContent-Disposition: form-data; name=model\r\n\r\nm\r\n--other--",
      /never appears/,
    ],
    ["a boundary line with more on it", "--b0undaryX\r\n", /more than its line/],
    [
      "a part that never ends",
      "--b0undary\r\nContent-Disposition: form-data; name=model\r\n\r\nm",
      /without its closing boundary/,
    ],
    [
      "headers that never end",
      "--b0undary\r\nContent-Disposition: form-data; name=model\r\n",
      /headers never end/,
    ],
    [
      "a header line without a colon",
      "--b0undary\r\nnonsense\r\n\r\nm\r\n--b0undary--",
      /not `Name: value`/,
    ],
    [
      "a folded header line",
      "--b0undary\r\nContent-Disposition: form-data;\r\n name=model\r\n\r\nm\r\n--b0undary--",
      /not `Name: value`/,
    ],
    [
      "no Content-Disposition",
      "--b0undary\r\nContent-Type: text/plain\r\n\r\nm\r\n--b0undary--",
      /no Content-Disposition/,
    ],
    [
      "two Content-Dispositions",
      "--b0undary\r\nContent-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=model\r\n\r\nm\r\n--b0undary--",
      /two Content-Disposition/,
    ],
    [
      "an attachment",
      "--b0undary\r\nContent-Disposition: attachment; name=model\r\n\r\nm\r\n--b0undary--",
      /not form-data/,
    ],
    [
      "a part without a name",
      "--b0undary\r\nContent-Disposition: form-data; filename=a\r\n\r\nm\r\n--b0undary--",
      /no name/,
    ],
    [
      "a name that never ends",
      '--b0undary\r\nContent-Disposition: form-data; name="model\r\n\r\nm\r\n--b0undary--',
      /parameters are malformed/,
    ],
  ])("refuses %s", (_what, body, message) => {
    expectMalformed(body, message);
  });

  it("refuses a model field given twice: form parsers disagree on which one counts", () => {
    const body = formBody("b0undary", [
      { name: "model", value: "a" },
      { name: "model", value: "b" },
    ]);
    expectMalformed(body, /more than one model field/);
  });

  it("refuses a part whose headers pass the bound, without reading on", () => {
    const huge = `--b0undary\r\nContent-Disposition: form-data; name=model\r\nX-Pad: ${"a".repeat(MAX_PART_HEADER_BYTES)}\r\n\r\nm\r\n--b0undary--`;
    expectMalformed(huge, /more than 8192 bytes of headers/);
    // Headers of exactly the bound are fine.
    const line = "Content-Disposition: form-data; name=model";
    const pad = `\r\nX-Pad: ${"a".repeat(MAX_PART_HEADER_BYTES - line.length - 9)}`;
    const fits = `--b0undary\r\n${line}${pad}\r\n\r\nm\r\n--b0undary--`;
    expect(read(Buffer.from(fits, "latin1"))).toEqual({ model: "m" });
  });

  it(`refuses more than ${MAX_PARTS} parts`, () => {
    const parts = Array.from({ length: MAX_PARTS }, (_, i) => ({ name: `f${i}`, value: "x" }));
    expect(read(formBody("b0undary", parts))).toEqual({});
    expectMalformed(
      formBody("b0undary", [...parts, { name: "model", value: "m" }]),
      /more than 256 parts/,
    );
  });

  it("works with a boundary of 70 characters, spaces included", () => {
    const boundary = `${"x ".repeat(34)}yz`;
    expect(boundary).toHaveLength(70);
    expect(read(formBody(boundary, [{ name: "model", value: "m" }]), boundary)).toEqual({
      model: "m",
    });
  });
});
