import { describe, expect, it } from "vitest";
import { createSseParser } from "./sse.js";

describe("createSseParser", () => {
  it("parses messages, ids and comments split across chunks", () => {
    const parser = createSseParser();
    expect(parser.push('id: 7\ndata: {"a"')).toEqual([]);
    expect(parser.push(":1}\n\n: keep-alive\n\n")).toEqual([
      { kind: "message", id: "7", data: '{"a":1}' },
      { kind: "comment", text: "keep-alive" },
    ]);
  });

  it("joins data lines, accepts CRLF and a CR split from its LF", () => {
    const parser = createSseParser();
    expect(parser.push("data: one\r")).toEqual([]);
    expect(parser.push("\ndata:two\r\n\r\n")).toEqual([
      { kind: "message", id: null, data: "one\ntwo" },
    ]);
  });

  it("ignores blank lines without data and unknown fields", () => {
    expect(createSseParser().push("\n\nevent: x\nretry: 5\n\n")).toEqual([]);
  });
});
