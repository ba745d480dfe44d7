import { describe, expect, it } from "vitest";
import { createSseParser } from "./sse.js";

describe("createSseParser", () => {
  it("reads ids, data and comments, whatever the chunking", () => {
    const text =
      ': keep-alive\n\nid: 7\ndata: {"a":1}\n\nid: 8\ndata: line one\ndata: line two\n\n';
    for (const size of [1, 2, 5, text.length]) {
      const parser = createSseParser();
      const out = [];
      for (let at = 0; at < text.length; at += size)
        out.push(...parser.push(text.slice(at, at + size)));
      expect(out, `chunks of ${size}`).toEqual([
        { kind: "comment", text: "keep-alive" },
        { kind: "message", event: "message", id: "7", data: '{"a":1}' },
        { kind: "message", event: "message", id: "8", data: "line one\nline two" },
      ]);
    }
  });

  it.each([
    ["CRLF", "id: 1\r\ndata: x\r\n\r\n"],
    ["CR", "id: 1\rdata: x\r\r\r"],
    ["no space after the colon", "id:1\ndata:x\n\n"],
  ])("accepts %s line ends and fields", (_name, text) => {
    expect(createSseParser().push(text)).toEqual([
      { kind: "message", event: "message", id: "1", data: "x" },
    ]);
  });

  it("waits for the rest of a message and of a split CRLF", () => {
    const parser = createSseParser();
    expect(parser.push("data: x\r")).toEqual([]);
    expect(parser.push("\n")).toEqual([]);
    expect(parser.push("\r\n")).toEqual([
      { kind: "message", event: "message", id: null, data: "x" },
    ]);
  });

  it("keeps the last id for later messages, names each by its event, ignores retry", () => {
    const parser = createSseParser();
    expect(parser.push("id: 3\nevent: x\nretry: 10\ndata: a\n\ndata: b\n\n")).toEqual([
      { kind: "message", event: "x", id: "3", data: "a" },
      { kind: "message", event: "message", id: "3", data: "b" },
    ]);
  });

  it("parses messages, ids and comments split across chunks", () => {
    const parser = createSseParser();
    expect(parser.push('id: 7\ndata: {"a"')).toEqual([]);
    expect(parser.push(":1}\n\n: keep-alive\n\n")).toEqual([
      { kind: "message", event: "message", id: "7", data: '{"a":1}' },
      { kind: "comment", text: "keep-alive" },
    ]);
  });

  it("joins data lines, accepts CRLF and a CR split from its LF", () => {
    const parser = createSseParser();
    expect(parser.push("data: one\r")).toEqual([]);
    expect(parser.push("\ndata:two\r\n\r\n")).toEqual([
      { kind: "message", event: "message", id: null, data: "one\ntwo" },
    ]);
  });

  it("ignores blank lines without data and unknown fields", () => {
    expect(createSseParser().push("\n\nevent: x\nretry: 5\n\n")).toEqual([]);
  });

  it.each([
    ["LF", "event: a\ndata: 1\n\n"],
    ["CRLF", "event: a\r\ndata: 1\r\n\r\n"],
    ["CR", "event: a\rdata: 1\r\r"],
  ])("ends messages at %s line ends at once, however the text is cut", (_name, text) => {
    for (let cut = 0; cut <= text.length; cut += 1) {
      const parser = createSseParser();
      const seen = [...parser.push(text.slice(0, cut)), ...parser.push(text.slice(cut))];
      expect(seen).toEqual([{ kind: "message", event: "a", id: null, data: "1" }]);
    }
  });

  it("joins data lines, names unnamed events message and skips events without data", () => {
    expect(createSseParser().push("data: x\ndata:y\n\nevent: lonely\n\ndata\n\n")).toEqual([
      { kind: "message", event: "message", id: null, data: "x\ny" },
      { kind: "message", event: "message", id: null, data: "" },
    ]);
  });
});
