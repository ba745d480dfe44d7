import { describe, expect, it } from "vitest";
import { JsonScanError, type ScanProblem, scanJsonObject } from "./json-scan.js";

// The scanner must accept exactly what JSON.parse accepts (then refuse what is not an object or
// nests too deep), and find the same top-level values JSON.parse would give.

const WANTED = new Set(["model", "stream"]);

const scan = (text: string | Buffer, depth = 64) =>
  scanJsonObject(typeof text === "string" ? Buffer.from(text) : text, WANTED, depth);

const problemOf = (text: string | Buffer, depth = 64): ScanProblem | null => {
  try {
    scan(text, depth);
    return null;
  } catch (error) {
    if (error instanceof JsonScanError) return error.problem;
    throw error;
  }
};

/** What JSON.parse makes of the same text, as the scanner should report it. */
const expected = (text: string): ScanProblem | null => {
  if (text.length === 0) return "empty";
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "invalid";
  }
  return typeof value === "object" && value !== null && !Array.isArray(value) ? null : "not_object";
};

/** The top-level values the scanner found, decoded, to compare with JSON.parse's. */
const valuesOf = (text: string): Record<string, unknown> => {
  const buf = Buffer.from(text);
  const found: Record<string, unknown> = {};
  for (const [name, span] of scan(buf))
    found[name] = JSON.parse(buf.toString("utf8", span.start, span.end));
  return found;
};

describe("scanJsonObject", () => {
  it.each([
    '{"model":"m","n":1}',
    "{}",
    '  \n{"model":"m"}\n  ',
    '{"nested":{"a":[1,{"b":null}]},"model":"x"}',
    '{"text":"héllo ☃ \\u00e9 \\ud83d\\ude00","model":"m"}',
    '{"model":{"a":[1,2]},"stream":[true]}',
    '{"model":"a","model":"b"}',
    '{"mod\\u0065l":"escaped key","stream":true}',
    '{"stream":false,"model":"m"}',
    '{"n":[-0,0.5,1e3,-2E-7,10,1.0e+2],"s":"\\"\\\\\\/\\b\\f\\n\\r\\t"}',
    '{"a":[],"b":{},"c":[[]],"d":[{}],"model":null}',
    '{"x":{"model":"not top level"}}',
  ])("reads %s as JSON.parse does", (text) => {
    expect(problemOf(text)).toBeNull();
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const wanted = Object.fromEntries(Object.entries(parsed).filter(([key]) => WANTED.has(key)));
    expect(valuesOf(text)).toEqual(wanted);
  });

  it.each([
    ["", "empty"],
    ["   ", "invalid"],
    ["[]", "not_object"],
    ['[{"model":"m"}]', "not_object"],
    ["null", "not_object"],
    ['"model"', "not_object"],
    ["42", "not_object"],
    ["true", "not_object"],
    ["{oops", "invalid"],
    ['{"model":"m"', "invalid"],
    ['{"a":1}{"b":2}', "invalid"],
    ["model=m", "invalid"],
    ['{"a":01}', "invalid"],
    ['{"a":1.}', "invalid"],
    ['{"a":.5}', "invalid"],
    ['{"a":1e}', "invalid"],
    ['{"a":-}', "invalid"],
    ['{"a":+1}', "invalid"],
    ['{"a":tru}', "invalid"],
    ['{"a":nul}', "invalid"],
    ['{"a":"\\x"}', "invalid"],
    ['{"a":"\\u12G4"}', "invalid"],
    ['{"a":"tab\there"}', "invalid"],
    ['{"a":1,}', "invalid"],
    ['{"a":[1,]}', "invalid"],
    ['{,"a":1}', "invalid"],
    ['{"a" 1}', "invalid"],
    ["{a:1}", "invalid"],
    ["{'a':1}", "invalid"],
    ['{"a":[1 2]}', "invalid"],
    ['{"a":{"b":1]}', "invalid"],
    ['{"a":[1}', "invalid"],
    ['\ufeff{"a":1}', "invalid"],
    ['{"a":"unterminated}', "invalid"],
    ['{"a":NaN}', "invalid"],
    ['{"a":Infinity}', "invalid"],
  ])("refuses %j as %s", (text, problem) => {
    expect(problemOf(text)).toBe(problem);
    expect(expected(text)).toBe(problem);
  });

  it("refuses bytes that are not JSON", () => {
    expect(problemOf(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))).toBe("invalid");
    expect(problemOf(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x00, 0x7d]))).toBe("invalid");
  });

  it("counts the object itself as a level and refuses one level past the limit", () => {
    const nested = (levels: number) => `{"a":${"[".repeat(levels - 1)}${"]".repeat(levels - 1)}}`;
    expect(problemOf(nested(64), 64)).toBeNull();
    expect(problemOf(nested(65), 64)).toBe("too_deep");
    expect(problemOf('{"a":{"b":{}}}', 3)).toBeNull();
    expect(problemOf('{"a":{"b":{}}}', 2)).toBe("too_deep");
  });

  it("refuses millions of levels without a deep stack or a large heap", () => {
    const levels = 8_000_000;
    const body = Buffer.alloc(levels * 2 + 8, 0x20);
    body.write('{"a":', 0);
    body.fill(0x5b, 5, 5 + levels);
    body.fill(0x5d, 5 + levels, 5 + 2 * levels);
    body.write("}", 5 + 2 * levels);
    expect(problemOf(body)).toBe("too_deep");
  });

  it("gives the span of the last value of a repeated member, as JSON.parse keeps the last", () => {
    const text = '{"model":"first","x":1,"model":"second"}';
    const span = scan(text).get("model");
    expect(span && text.slice(span.start, span.end)).toBe('"second"');
  });

  it("ignores members it was not asked for, however long their key", () => {
    const key = "k".repeat(1000);
    expect(valuesOf(`{"${key}":1,"model":"m"}`)).toEqual({ model: "m" });
  });

  // Random documents, and random corruptions of them: the scanner agrees with JSON.parse on
  // every one (valid or not, object or not) and finds the same top-level values.
  it("agrees with JSON.parse on thousands of generated and corrupted documents", () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const value = (depth: number): unknown => {
      const kind = depth > 4 ? Math.floor(random() * 4) : Math.floor(random() * 6);
      if (kind === 0) return pick(["", "model", "m\u00e9", 'q"uote', "back\\slash", "\n", "☃"]);
      if (kind === 1) return pick([0, -1, 3.25, 1e21, -2.5e-7, 42]);
      if (kind === 2) return pick([true, false, null]);
      if (kind === 3) return pick(["stream", "model", "x"]);
      if (kind === 4)
        return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
      return Object.fromEntries(
        Array.from({ length: Math.floor(random() * 4) }, () => [
          pick(["model", "stream", "a", "mo", ""]),
          value(depth + 1),
        ]),
      );
    };
    const noise = ["{", "}", "[", "]", ",", ":", '"', "\\", "1", "-", "e", ".", " ", "t", "\u0001"];
    let checked = 0;
    for (let round = 0; round < 3000; round += 1) {
      let text = JSON.stringify(
        round % 3 === 0 ? value(0) : { model: value(3), stream: value(3), rest: value(1) },
        null,
        round % 2 === 0 ? 0 : 1,
      );
      if (round % 2 === 1) {
        const at = Math.floor(random() * (text.length + 1));
        text =
          random() < 0.5
            ? text.slice(0, at) + pick(noise) + text.slice(at)
            : text.slice(0, at) + text.slice(at + 1);
      }
      expect([text, problemOf(text)]).toEqual([text, expected(text)]);
      if (expected(text) === null) {
        const parsed = JSON.parse(text) as Record<string, unknown>;
        expect(valuesOf(text)).toEqual(
          Object.fromEntries(Object.entries(parsed).filter(([key]) => WANTED.has(key))),
        );
      }
      checked += 1;
    }
    expect(checked).toBe(3000);
  });
});
